package account

import (
	"slices"
	"strings"

	"github.com/eventcrm/crm/domain"
)

// SizeBand is a company's size, as a band of its number of employees.
type SizeBand string

// Size bands, named after the employee counts they hold.
const (
	Size1to9       SizeBand = "1-9"
	Size10to49     SizeBand = "10-49"
	Size50to249    SizeBand = "50-249"
	Size250to999   SizeBand = "250-999"
	Size1000to4999 SizeBand = "1000-4999"
	Size5000Plus   SizeBand = "5000+"
)

var sizeBands = []SizeBand{Size1to9, Size10to49, Size50to249, Size250to999, Size1000to4999, Size5000Plus}

// SizeBands lists the size bands, smallest first.
func SizeBands() []SizeBand { return slices.Clone(sizeBands) }

// ParseSizeBand validates a size band; "" means unknown.
func ParseSizeBand(field, s string) (SizeBand, error) {
	if s == "" || slices.Contains(sizeBands, SizeBand(s)) {
		return SizeBand(s), nil
	}
	names := make([]string, len(sizeBands))
	for i, b := range sizeBands {
		names[i] = string(b)
	}
	return "", domain.Invalid(field, "%q is not a size band (%s)", s, strings.Join(names, ", "))
}

package period

import (
	"time"

	"github.com/eventcrm/crm/projections/readmodel"
)

// Define returns the read model that declare describes in the business zone loc (UTC when
// nil), at the version of base in that zone (Version). declare is given the zone and leaves
// the Spec's Version unset.
func Define(loc *time.Location, base int, declare func(zone *time.Location) readmodel.Spec) *readmodel.Model {
	zone := Zone(loc)
	spec := declare(zone)
	spec.Version = Version(base, zone)
	return readmodel.Define(spec)
}

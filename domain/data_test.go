package domain_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/eventcrm/crm/domain"
)

// wide has more fields than goccy/go-json matches member names of by their letters alone.
type wide struct {
	F01, F02, F03, F04, F05, F06, F07, F08, F09, F10, F11, F12, F13, F14, F15, F16 string
	ContactID                                                                      string `json:"contact_id"`
}

// TestDecodeDataMatchesMemberNamesAsEncodingJSON: a member name is matched to a field as
// encoding/json matches it, in a struct of any number of fields.
func TestDecodeDataMatchesMemberNamesAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, data := range []string{
		`{"contact_id":"c-1","f01":"a"}`,
		`{"CONTACT_ID":"c-1","F01":"a"}`,
		`{"Contact_Id":"c-1","f16":"a"}`,
		`{"\u0063ontact_id":"c-1"}`,
		`{"\u0063":"c-1"}`,
		"{\"contact_id\":\"c-1\",\"\u212a\":\"k\"}",
	} {
		var want, got wide
		if err := json.Unmarshal([]byte(data), &want); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if err := domain.DecodeData([]byte(data), &got); err != nil {
			t.Errorf("%s: %v", data, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: DecodeData gives %+v; encoding/json gives %+v", data, got, want)
		}
	}
}

package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/store"
)

func TestCanonicalizeRFC8785(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// RFC 8785 §3.2.2 example.
		{`{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
		   "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
		   "literals": [null, true, false]}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// RFC 8785 §3.2.3: sorting by UTF-16 code units.
		{`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",
		   "\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			`{"\r":"Carriage Return","1":"One","` + "\u0080" + `":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","` + "\ufb33" + `":"Hebrew Letter Dalet With Dagesh"}`},
		// Numbers (RFC 8785 Appendix B).
		{`[0, -0, 1, -1, 1.0, 1e0, 100, 1e21, 1e20, 123e-20, 0.000001, 0.0000001, 9007199254740992, -9007199254740992, 5e-324, 1.7976931348623157e308, 1.5e300]`,
			`[0,0,1,-1,1,1,100,1e+21,100000000000000000000,1.23e-18,0.000001,1e-7,9007199254740992,-9007199254740992,5e-324,1.7976931348623157e+308,1.5e+300]`},
		{` "<>&\u2028\t\u001f\u007f" `, `"<>&` + "\u2028" + `\t\u001f` + "\x7f" + `"`},
		{`{"b":{"d":1,"c":[{"z":null,"a":"x"}]},"a":[]}`, `{"a":[],"b":{"c":[{"a":"x","z":null}],"d":1}}`},
		{`"\ud83d\ude00"`, `"😀"`},
	} {
		got, err := audit.Canonicalize([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("Canonicalize(%s)\n got %s, %v\nwant %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{
		``, `{`, `{"a":1,"a":2}`, `[1,]`, `1 2`, `{"a":1}x`, "\"\xff\"", `"\ud800"`, `"\udc00x"`, `"\ud800\u0041"`,
		`12345678901234567890`, `-9007199254740993`, `1e400`, strings.Repeat("[", 70) + strings.Repeat("]", 70), `NaN`,
	} {
		if got, err := audit.Canonicalize([]byte(bad)); err == nil {
			t.Errorf("Canonicalize(%.40q) = %s, want an error", bad, got)
		}
	}
}

// TestHashVector pins HashRecord: DESIGN.md quotes this record and hash,
// so an auditor can test a re-implementation against it.
func TestHashVector(t *testing.T) {
	r := store.AuditRecord{
		ID: 42, Time: time.Date(2025, 3, 4, 5, 6, 7, 890000000, time.UTC),
		UserID: "u-1", Username: "admin", Action: "INSTANCE_CREATED", ResourceType: "instance", ResourceID: "i-7",
		Details: json.RawMessage(`{"name": "flow-7", "memory_mb": 512}`), IP: "192.0.2.1", UserAgent: "towerctl/1.0",
		PrevHash: "v1:0000000000000000000000000000000000000000000000000000000000000000",
	}
	got, err := audit.HashRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	if got != hashVector {
		t.Fatalf("HashRecord = %s, want %s (the v1 hash must never change)", got, hashVector)
	}
	r.Details = nil
	if got2, _ := audit.HashRecord(r); got2 == got {
		t.Fatal("details absent and present hash the same")
	}
}

// hashVector was computed by testdata/verify_export.py, an independent
// implementation of DESIGN.md.
const hashVector = "v1:631e1b12c0b215873db245865ea057f826310e0755c7ab0330852be592724460"

// TestIsRedactedKey: the redacted names are matched in any case, and
// only those.
func TestIsRedactedKey(t *testing.T) {
	for name, want := range map[string]bool{"password": true, "Refresh_Token": true, "AUTHORIZATION": true,
		"name": false, "token_count": false, "": false} {
		if got := audit.IsRedactedKey(name); got != want {
			t.Errorf("IsRedactedKey(%q) = %v, want %v", name, got, want)
		}
	}
}

package audit_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/redforge/controltower/hub/audit"
)

// FuzzCanonicalize: never panics; what it accepts is valid JSON with the
// same meaning, and canonical output is a fixed point.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1.5,true,null,"x"]}`, `1e21`, `"\ud83d\ude00"`, `{"a":{"a":{}}}`, `-0.0`, `[]`, `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := audit.Canonicalize(in)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Canonicalize(%q) = %q: not JSON", in, out)
		}
		again, err := audit.Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %q -> %q -> %q, %v", in, out, again, err)
		}
		var a, b any
		if json.Unmarshal(in, &a) != nil || json.Unmarshal(out, &b) != nil {
			t.Fatalf("accepted %q that encoding/json refuses", in)
		}
		if !reflect.DeepEqual(a, b) { // float64 ==: -0 and 0 are the same number
			t.Fatalf("meaning changed: %q -> %q", in, out)
		}
	})
}

// FuzzVerifyExport: the offline verifier never panics on any file.
func FuzzVerifyExport(f *testing.F) {
	f.Add([]byte(`{"format":"redforge-audit-export","version":1,"hash":"v1","filtered":false,"filter":{},"records":[],"count":0,"head_id":0,"head_hash":""}`))
	f.Add([]byte("#redforge-audit-export,version=1,hash=v1,filtered=false,filter={}\nid,time,user_id,username,action,resource_type,resource_id,details,ip,user_agent,prev_hash,hash\n#end,count=0,head_id=0,head_hash=,chain_head_id=0,chain_head_hash=\n"))
	f.Add([]byte(`{"format":"redforge-audit-export","version":1,"hash":"v1","filtered":true,"filter":{"user_id":"u"},"records":[{"id":3,"time":"2025-01-01T00:00:00.000000Z","user_id":"u","username":"","action":"X","resource_type":"","resource_id":"","details":{"a":1},"ip":"","user_agent":"","prev_hash":"v1:00","hash":"v1:00"}],"count":1,"head_id":3,"head_hash":"v1:00"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := audit.VerifyExport(bytes.NewReader(in))
		if err == nil && res.OK && res.FirstBroken != nil {
			t.Fatalf("OK with a broken link: %+v", res)
		}
	})
}

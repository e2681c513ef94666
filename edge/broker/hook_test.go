package broker

import (
	"encoding/json"
	"testing"
)

func TestIsJSONObject(t *testing.T) {
	for in, want := range map[string]bool{
		`{}`:                   true,
		" \n\t{\"a\":[1]}\r\n": true,
		`{"a":{"b":null}}`:     true,
		``:                     false,
		`   `:                  false,
		`null`:                 false,
		`[{}]`:                 false,
		`"{}"`:                 false,
		`{"a":1`:               false,
		`{} {}`:                false,
		`{}x`:                  false,
		"\ufeff{}":             false, // a BOM is not JSON whitespace
	} {
		if got := isJSONObject([]byte(in)); got != want {
			t.Errorf("isJSONObject(%q) = %v, want %v", in, got, want)
		}
	}
}

// FuzzIsJSONObject checks the validator against encoding/json: a payload is
// accepted exactly when it decodes into a non-nil JSON object.
func FuzzIsJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `[]`, `null`, ` {"x":"\u00e9"} `, `{"a":}`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var m map[string]any
		want := json.Valid(p) && json.Unmarshal(p, &m) == nil && m != nil
		if got := isJSONObject(p); got != want {
			t.Fatalf("isJSONObject(%q) = %v, encoding/json says %v", p, got, want)
		}
	})
}

package api

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCheckJSONSyntax(t *testing.T) {
	for _, c := range []struct{ body, field, msg string }{
		{`{"a":1}`, "", ""},
		{`[{"id":"x"},{"id":"x"}]`, "", ""}, // equal values in two objects are not duplicate keys
		{`{"a":1,"a":1}`, "a", "duplicate key"},
		{`{"a":{"b":[{"c":1,"\u0063":2}]}}`, "a.b.0.c", "duplicate key"},
		{`{"a":1} {"b":2}`, "", "exactly one JSON value"},
		{``, "", "empty"},
		{`{"a":`, "", "not valid JSON"},
	} {
		e := checkJSONSyntax([]byte(c.body))
		switch {
		case c.msg == "" && e != nil:
			t.Errorf("%s: %v, want accepted", c.body, e)
		case c.msg != "" && (e == nil || e.Field != c.field || !strings.Contains(e.Message, c.msg)):
			t.Errorf("%s: %+v, want field %q and %q", c.body, e, c.field, c.msg)
		}
	}
}

// BenchmarkCheckJSONSyntax measures the duplicate-key check on a large
// flows document (about 16 MB, MaxFlowsBytes) against json.Valid on the
// same bytes, measured in the same run.
func BenchmarkCheckJSONSyntax(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[")
	for i := 0; sb.Len() < MaxFlowsBytes-1024; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"id":"n%d","type":"function","z":"t1","name":"node %d","func":"return msg;","outputs":1,"x":%d,"y":%d,"wires":[["n%d"]]}`, i, i, i%800, i%600, i+1)
	}
	sb.WriteString("]")
	body := []byte(sb.String())
	measure := func(f func()) time.Duration {
		start := time.Now()
		for range 5 {
			f()
		}
		return time.Since(start) / 5
	}
	ref := measure(func() { json.Valid(body) })
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if e := checkJSONSyntax(body); e != nil {
			b.Fatal(e)
		}
	}
	got := measure(func() { checkJSONSyntax(body) })
	b.ReportMetric(float64(got)/float64(ref), "x_json.Valid")
	b.Logf("%d MB flows: duplicate-key check %v, json.Valid %v (ratio %.2f); %s, %d cores",
		len(body)>>20, got, ref, float64(got)/float64(ref), runtime.GOARCH, runtime.NumCPU())
}

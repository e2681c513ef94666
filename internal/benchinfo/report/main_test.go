package main

import (
	"strings"
	"testing"
)

func TestReportMediansVerdictsAndDiagnostics(t *testing.T) {
	in := strings.Join([]string{
		`benchinfo: figure="drain" unit="records/s" value=30 ref="raw COPY" reference=40 ratio=0.750 goal=0.80 cpu="X" cores=2 commit=abc`,
		`noise between the lines`,
		`benchinfo: figure="hub alone" unit="records/s" value=41 ref="raw COPY" reference=40 ratio=1.025 goal=0.00 cpu="X" cores=2 commit=abc`,
		`benchinfo: figure="drain" unit="records/s" value=36 ref="raw COPY" reference=40 ratio=0.900 goal=0.80 cpu="X" cores=2 commit=abc`,
		`benchinfo: figure="drain" unit="records/s" value=34 ref="raw COPY" reference=40 ratio=0.850 goal=0.80 cpu="X" cores=2 commit=abc`,
	}, "\n")
	var out strings.Builder
	if err := report(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"X, 2 cores, commit abc",
		"| drain | 34 records/s | raw COPY | 40 records/s | 0.75, 0.90, 0.85 | 0.85× | ≥ 0.80× | meets (3 runs) |",
		"| hub alone | 41 records/s | raw COPY | 40 records/s | 1.02 | 1.02× | none | diagnostic (1 runs) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if err := report(strings.NewReader("nothing here\n"), &out); err == nil {
		t.Error("an input without figures gave no error")
	}
}

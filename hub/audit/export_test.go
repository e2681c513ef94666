package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/store"
)

func mustExport(t *testing.T, l *audit.Logger, f audit.Format, filter store.AuditFilter) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := l.Export(context.Background(), &buf, f, filter); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustVerifyExport(t *testing.T, b []byte) audit.VerifyResult {
	t.Helper()
	res, err := audit.VerifyExport(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("VerifyExport: %v\n%s", err, b)
	}
	return res
}

// TestExportRoundTrip: an export verifies offline, complete, with the
// chain head the hub reports.
func TestExportRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		l := audit.New(st, audit.Config{})
		mustRecord(t, l, 30)
		// Content that CSV and JSON writers must carry exactly.
		err := l.Record(context.Background(), audit.Entry{UserID: "=cmd|' /C calc'!A0", Username: "'quoted'", Action: audit.ConfigUpdated,
			ResourceType: "-x", ResourceID: "a,b;\"c\"", Details: map[string]any{"html": "<b>&amp;</b>", "tab": "\t", "emoji": "😀", "f": 1e21},
			IP: "@ip", UserAgent: "+ua \"quoted\""})
		if err != nil {
			t.Fatal(err)
		}
		live := mustVerify(t, l)
		for _, f := range []audit.Format{audit.FormatJSON, audit.FormatCSV} {
			t.Run(string(f), func(t *testing.T) {
				file := mustExport(t, l, f, store.AuditFilter{})
				res := mustVerifyExport(t, file)
				if !res.OK || !res.Complete || res.Checked != 31 || res.HeadHash != live.HeadHash || res.HeadID != 31 {
					t.Fatalf("VerifyExport = %+v\n%s", res, file)
				}
				if f == audit.FormatCSV {
					cr := csv.NewReader(bytes.NewReader(file))
					cr.FieldsPerRecord = -1
					rows, err := cr.ReadAll()
					if err != nil {
						t.Fatal(err)
					}
					for _, row := range rows[2 : len(rows)-1] {
						for _, cell := range row {
							if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
								t.Fatalf("CSV cell %q would run as a spreadsheet formula", cell)
							}
						}
					}
				}
			})
		}
	})
}

// TestEditedExportDetected: editing, removing or reordering records in an
// export file, or cutting it short, fails offline verification.
func TestEditedExportDetected(t *testing.T) {
	st, _ := sqliteBackend.open(t)
	l := audit.New(st, audit.Config{})
	mustRecord(t, l, 12)
	jsonFile := string(mustExport(t, l, audit.FormatJSON, store.AuditFilter{}))
	csvFile := string(mustExport(t, l, audit.FormatCSV, store.AuditFilter{}))
	jsonLines := strings.Split(jsonFile, "\n")
	csvLines := strings.Split(csvFile, "\n")
	// JSON: line 0 is the header, then "records":[, then record 1 on line 2.
	jsonRec := func(id int) int { return id + 1 }
	// CSV: marker row, column row, then record 1 on line 2.
	csvRec := func(id int) int { return id + 1 }
	without := func(lines []string, i int) string {
		out := append(append([]string{}, lines[:i]...), lines[i+1:]...)
		return strings.Join(out, "\n")
	}
	replaceLine := func(lines []string, i int, old, new string) string {
		out := append([]string{}, lines...)
		if !strings.Contains(out[i], old) {
			t.Fatalf("line %d has no %q: %s", i, old, out[i])
		}
		out[i] = strings.Replace(out[i], old, new, 1)
		return strings.Join(out, "\n")
	}
	swap := func(lines []string, i, j int, sep string) string {
		out := append([]string{}, lines...)
		a, b := strings.TrimSuffix(out[i], sep), strings.TrimSuffix(out[j], sep)
		out[i] = strings.Replace(out[i], a, b, 1)
		out[j] = strings.Replace(out[j], b, a, 1)
		return strings.Join(out, "\n")
	}

	cases := []struct {
		name   string
		file   string
		broken int64
	}{
		{"JSON username edited", replaceLine(jsonLines, jsonRec(5), `"username":"olga"`, `"username":"mallory"`), 5},
		{"JSON details edited", replaceLine(jsonLines, jsonRec(6), `"n":5`, `"n":50`), 6},
		{"JSON record removed", without(jsonLines, jsonRec(7)), 7},
		{"JSON records swapped", swap(jsonLines, jsonRec(3), jsonRec(4), ","), 3},
		{"CSV username edited", replaceLine(csvLines, csvRec(5), "olga", "mallory"), 5},
		{"CSV record removed", without(csvLines, csvRec(7)), 7},
		{"CSV time edited", replaceLine(csvLines, csvRec(8), ".", ".9"), 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := audit.VerifyExport(strings.NewReader(c.file))
			if err != nil {
				t.Fatalf("VerifyExport: %v", err)
			}
			wantBroken(t, c.name, res, c.broken)
		})
	}

	// The last record removed: the trailer no longer matches.
	res, err := audit.VerifyExport(strings.NewReader(without(csvLines, csvRec(12))))
	if err != nil {
		t.Fatal(err)
	}
	wantBroken(t, "CSV last record removed", res, 12)

	// Cut short: not a complete export at all.
	for name, file := range map[string]string{
		"JSON cut short":       jsonFile[:len(jsonFile)/2],
		"CSV cut short":        strings.Join(csvLines[:8], "\n"),
		"JSON without trailer": strings.Join(jsonLines[:len(jsonLines)-3], "\n") + "\n]}",
		"empty":                "",
		"not an export":        "hello",
		"JSON other":           `{"format":"something-else","records":[]}`,
	} {
		if _, err := audit.VerifyExport(strings.NewReader(file)); !errors.Is(err, audit.ErrBadExport) {
			t.Errorf("%s: err = %v, want ErrBadExport", name, err)
		}
	}
}

// TestFilteredExport: a filtered export verifies what it holds and says
// it cannot prove completeness.
func TestFilteredExport(t *testing.T) {
	st, _ := sqliteBackend.open(t)
	clk := &clock{t: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	l := audit.New(st, audit.Config{Now: clk.Now})
	for i := 0; i < 20; i++ {
		clk.t = clk.t.Add(time.Minute)
		mustRecord(t, l, 1)
	}
	live := mustVerify(t, l)
	for _, f := range []audit.Format{audit.FormatJSON, audit.FormatCSV} {
		byUser := mustVerifyExport(t, mustExport(t, l, f, store.AuditFilter{UserID: "u-0"}))
		if !byUser.OK || byUser.Complete || byUser.Checked != 20 || byUser.Unlinked != 0 && byUser.LinksChecked != 20 ||
			!strings.Contains(byUser.Reason, "partial") {
			t.Fatalf("%s by user: %+v", f, byUser)
		}
		window := store.AuditFilter{Start: time.Date(2025, 6, 1, 0, 5, 0, 0, time.UTC), End: time.Date(2025, 6, 1, 0, 15, 0, 0, time.UTC)}
		res := mustVerifyExport(t, mustExport(t, l, f, window))
		if !res.OK || res.Complete || res.Checked != 10 || res.FirstID != 5 || res.LinksChecked != 9 || res.Unlinked != 1 {
			t.Fatalf("%s by time: %+v", f, res)
		}
		if res.HeadHash == live.HeadHash {
			t.Fatalf("%s: a window's last record is not the chain head", f)
		}
	}
	if err := l.Export(context.Background(), &bytes.Buffer{}, "xml", store.AuditFilter{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Export(xml) = %v", err)
	}
}

// TestReferenceVerifier runs testdata/verify_export.py, a verifier written
// in Python from DESIGN.md alone, on an export: the documentation is
// precise enough to re-implement verification.
func TestReferenceVerifier(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	st, _ := sqliteBackend.open(t)
	l := audit.New(st, audit.Config{})
	mustRecord(t, l, 25)
	err = l.Record(context.Background(), audit.Entry{Action: audit.ConfigUpdated, UserID: "ü", Details: json.RawMessage(
		`{"f":[1e21,1e-7,0.1,-0,123e-20,1.0],"s":"\u20ac\u0000\n\"\\","\ud83d\ude00":1,"\ufb33":2,"\u00f6":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	file := mustExport(t, l, audit.FormatJSON, store.AuditFilter{})
	live := mustVerify(t, l)
	run := func(content []byte) (string, error) {
		path := filepath.Join(t.TempDir(), "export.json")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, "testdata/verify_export.py", path).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	out, err := run(file)
	if err != nil || out != "OK 26 "+live.HeadHash {
		t.Fatalf("reference verifier: %s, %v; want OK 26 %s", out, err, live.HeadHash)
	}
	edited := bytes.Replace(file, []byte(`"username":"olga"`), []byte(`"username":"eve"`), 1)
	if out, err := run(edited); err == nil || !strings.HasPrefix(out, "FAIL") {
		t.Fatalf("reference verifier on an edited export: %s, %v", out, err)
	}
}

package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/redforge/controltower/hub/store"
)

// ReportType names a compliance report.
type ReportType string

// Compliance reports over the audit log.
const (
	// ReportHIPAAAccess: who authenticated, when and from where, and every
	// credential change (HIPAA §164.312(b) access review).
	ReportHIPAAAccess ReportType = "hipaa_access"
	// ReportSOC2Change: every change to the fleet, deployments,
	// configuration and access rights, by whom (SOC 2 CC8.1).
	ReportSOC2Change ReportType = "soc2_change"
	// ReportGDPRAccess: every action on user records, optionally for one
	// data subject (GDPR Art. 15 access request).
	ReportGDPRAccess ReportType = "gdpr_access"
)

var reportActions = map[ReportType][]string{
	ReportHIPAAAccess: {LoginSucceeded, LoginFailed, Logout, TokenCreated, TokenRevoked, PasswordChanged, RoleAssigned},
	ReportSOC2Change: {InstanceCreated, InstanceUpdated, InstanceStarted, InstanceStopped, InstanceRestarted, InstanceDestroyed,
		FlowsDeployed, DeploymentStarted, DeploymentCompleted, DeploymentRolledBack, ConfigUpdated,
		UserCreated, UserUpdated, UserDeleted, RoleAssigned, TokenCreated, TokenRevoked, EdgeTokenCreated, EdgeEnrolled,
		NodesInstalled, NodesRemoved, NodePolicyChanged, SnapshotRolledBack},
	ReportGDPRAccess: {UserCreated, UserUpdated, UserDeleted, RoleAssigned, PasswordChanged, LoginSucceeded, LoginFailed, Logout},
}

// ReportRequest selects a report.
type ReportRequest struct {
	Type  ReportType `json:"type"`
	Start time.Time  `json:"start"`
	End   time.Time  `json:"end"`
	// SubjectUserID narrows a GDPR report to one person's records.
	SubjectUserID string `json:"subject_user_id,omitempty"`
}

// Report is a generated compliance report.
type Report struct {
	Type        ReportType          `json:"type"`
	Title       string              `json:"title"`
	GeneratedAt time.Time           `json:"generated_at"`
	Start       time.Time           `json:"start"`
	End         time.Time           `json:"end"`
	Subject     string              `json:"subject_user_id,omitempty"`
	Chain       VerifyResult        `json:"chain"`
	ByAction    map[string]int      `json:"by_action"`
	ByUser      map[string]int      `json:"by_user"`
	Records     []store.AuditRecord `json:"records"`
}

var reportTitles = map[ReportType]string{
	ReportHIPAAAccess: "HIPAA access report",
	ReportSOC2Change:  "SOC 2 change report",
	ReportGDPRAccess:  "GDPR data-access report",
}

// MaxReportRecords bounds one report; narrow the range for more.
const MaxReportRecords = 100000

// Validate checks a report request, naming the field at fault.
func (r ReportRequest) Validate() error {
	if _, ok := reportActions[r.Type]; !ok {
		return &store.InvalidError{Field: "type", Reason: "must be hipaa_access, soc2_change or gdpr_access"}
	}
	if r.Start.IsZero() || r.End.IsZero() {
		return &store.InvalidError{Field: "start", Reason: "start and end are required (RFC 3339 times)"}
	}
	if r.End.Before(r.Start) {
		return &store.InvalidError{Field: "end", Reason: "must not be before start"}
	}
	return nil
}

// GenerateReport builds a report from the audit log, with the chain's
// verification so the reader knows the records are untampered.
func (l *Logger) GenerateReport(ctx context.Context, req ReportRequest) (Report, error) {
	if err := req.Validate(); err != nil {
		return Report{}, err
	}
	rep := Report{Type: req.Type, Title: reportTitles[req.Type], GeneratedAt: l.now().UTC(),
		Start: req.Start.UTC(), End: req.End.UTC(), Subject: req.SubjectUserID,
		ByAction: map[string]int{}, ByUser: map[string]int{}, Records: []store.AuditRecord{}}
	chain, err := l.Verify(ctx)
	if err != nil {
		return Report{}, err
	}
	rep.Chain = chain
	want := map[string]bool{}
	for _, a := range reportActions[req.Type] {
		want[a] = true
	}
	f := store.AuditFilter{Start: req.Start, End: req.End}
	err = l.st.IterateAudit(ctx, f, func(r store.AuditRecord) error {
		if !want[r.Action] {
			return nil
		}
		if req.SubjectUserID != "" && r.UserID != req.SubjectUserID && r.ResourceID != req.SubjectUserID {
			return nil
		}
		if len(rep.Records) >= MaxReportRecords {
			return &store.InvalidError{Field: "start", Reason: fmt.Sprintf("more than %d records; narrow the date range", MaxReportRecords)}
		}
		rep.Records = append(rep.Records, r)
		rep.ByAction[r.Action]++
		user := r.Username
		if user == "" {
			user = "(none)"
		}
		rep.ByUser[user]++
		return nil
	})
	return rep, err
}

// WriteCSV writes the report's records as CSV.
func (rep Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "time", "user_id", "username", "action", "resource_type", "resource_id", "ip", "user_agent", "details", "hash"})
	for _, r := range rep.Records {
		_ = cw.Write([]string{strconv.FormatInt(r.ID, 10), r.Time.UTC().Format(time.RFC3339Nano), r.UserID, r.Username,
			r.Action, r.ResourceType, r.ResourceID, r.IP, r.UserAgent, string(r.Details), r.Hash})
	}
	cw.Flush()
	return cw.Error()
}

// WritePDF renders the report as a PDF: summary, chain status and the
// records table.
func (rep Report) WritePDF(w io.Writer) error {
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetTitle(rep.Title, true)
	pdf.SetAuthor("RedForge Control Tower", true)
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 16)
	pdf.CellFormat(0, 10, rep.Title, "", 1, "", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	line := func(s string) { pdf.CellFormat(0, 6, pdfText(s), "", 1, "", false, 0, "") }
	line(fmt.Sprintf("Period: %s to %s", rep.Start.Format(time.RFC3339), rep.End.Format(time.RFC3339)))
	line("Generated: " + rep.GeneratedAt.Format(time.RFC3339))
	if rep.Subject != "" {
		line("Data subject: " + rep.Subject)
	}
	status := "VERIFIED: the audit hash chain is intact"
	if !rep.Chain.OK {
		status = "WARNING: the audit hash chain is broken: " + rep.Chain.Reason
	}
	line(fmt.Sprintf("%s (%d records checked, head %s)", status, rep.Chain.Checked, rep.Chain.HeadHash))
	line(fmt.Sprintf("Records in this report: %d", len(rep.Records)))
	pdf.Ln(2)
	pdf.SetFont("Helvetica", "B", 11)
	pdf.CellFormat(0, 7, "By action", "", 1, "", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	for _, k := range sortedKeys(rep.ByAction) {
		line(fmt.Sprintf("%-28s %d", k, rep.ByAction[k]))
	}
	pdf.SetFont("Helvetica", "B", 11)
	pdf.CellFormat(0, 7, "By user", "", 1, "", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	for _, k := range sortedKeys(rep.ByUser) {
		line(fmt.Sprintf("%-28s %d", k, rep.ByUser[k]))
	}
	pdf.AddPage()
	cols := []struct {
		name  string
		width float64
	}{{"ID", 14}, {"Time (UTC)", 42}, {"User", 32}, {"Action", 48}, {"Resource", 70}, {"IP", 30}, {"Hash", 41}}
	pdf.SetFont("Helvetica", "B", 8)
	for _, c := range cols {
		pdf.CellFormat(c.width, 6, c.name, "1", 0, "", false, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("Helvetica", "", 7)
	for _, r := range rep.Records {
		vals := []string{strconv.FormatInt(r.ID, 10), r.Time.UTC().Format("2006-01-02 15:04:05"), r.Username, r.Action,
			r.ResourceType + " " + r.ResourceID, r.IP, shortHash(r.Hash)}
		for i, c := range cols {
			pdf.CellFormat(c.width, 5, pdfText(truncate(vals[i], int(c.width/1.6))), "1", 0, "", false, 0, "")
		}
		pdf.Ln(-1)
	}
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("render report pdf: %w", err)
	}
	return pdf.Output(w)
}

// WriteJSON writes the whole report as JSON.
func (rep Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func shortHash(h string) string { return truncate(h, 20) }

func truncate(s string, n int) string {
	if len(s) <= n || n < 4 {
		return s
	}
	return s[:n-3] + "..."
}

// pdfText keeps the core fonts' character set: anything outside printable
// ASCII becomes '?'.
func pdfText(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

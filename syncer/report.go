package syncer

import (
	"context"
	"fmt"
	"html/template"
	"sort"
	"strings"

	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/models"
)

// Mailer queues a mail in the transaction carried by ctx, so a sync report
// goes out exactly when the outcome it reports commits, and sending never
// holds up a run.
type Mailer interface {
	Enqueue(ctx context.Context, m mail.Message) error
}

// reportKind is the kind of every sync report mail.
const reportKind = "sync_report"

// maxReportLines bounds the locations a batch summary lists one by one;
// a dealer's 10,000-location batch is summed up, not listed.
const maxReportLines = 50

// reportRun mails the outcome of a users or import run to the location's
// report e-mails, in the transaction carried by ctx. A run of a batch is
// not mailed on its own: its batch sends one summary when it finishes.
func (e *Engine) reportRun(ctx context.Context, r models.Run, loc models.Location, outcome, detail string) error {
	if e.cfg.Mailer == nil || r.BatchID != nil || (r.Kind != models.RunUsers && r.Kind != models.RunImport) {
		return nil
	}
	to := loc.ReportEmailList()
	if len(to) == 0 {
		return nil
	}
	subject := fmt.Sprintf("%s: %s %s", loc.Name, strings.ToLower(runLabel(r.Kind, r.TriggerSource)), outcome)
	lines := []reportLine{
		{"Location", loc.Name},
		{"Outcome", outcome},
		{"Details", detail},
		{"Run", r.ID},
		{"Requested by", r.RequestedBy},
		{"Trigger", string(r.TriggerSource)},
	}
	if r.ReappliedFrom != nil {
		lines = append(lines, reportLine{"Restores run", *r.ReappliedFrom})
	}
	text, html := renderReport(subject, lines, nil)
	for _, addr := range to {
		err := e.cfg.Mailer.Enqueue(ctx, mail.Message{
			To: addr, Subject: subject, Text: text, HTML: html, Kind: reportKind, AccountID: r.AccountID,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// reportBatch mails one summary of a finished users or import batch to
// the report e-mails of its locations, each address once.
func (e *Engine) reportBatch(ctx context.Context, b models.Batch, st BatchStatus) error {
	if e.cfg.Mailer == nil || (b.Kind != models.RunUsers && b.Kind != models.RunImport) {
		return nil
	}
	outcomes, err := e.store.BatchRunOutcomes(ctx, b.ID)
	if err != nil {
		return err
	}
	recipients := map[string]bool{}
	var notable []reportLine
	for _, o := range outcomes {
		for _, addr := range o.Location.ReportEmailList() {
			recipients[addr] = true
		}
		if o.State == models.RunFailed || o.State == models.RunAwaitingApply {
			notable = append(notable, reportLine{o.Location.Name, runOutcomeText(o)})
		}
	}
	if len(recipients) == 0 {
		return nil
	}
	subject := batchSummary(b, st)
	if st.Held > 0 {
		subject += fmt.Sprintf(", %d held for apply", st.Held)
	}
	subject += kindNote(b.Kind)
	lines := []reportLine{
		{"Batch", b.ID},
		{"Requested by", b.RequestedBy},
		{"Locations", fmt.Sprint(b.Total - b.Skipped)},
		{"Succeeded", fmt.Sprint(st.Succeeded)},
		{"Failed", fmt.Sprint(st.Failed)},
		{"Cancelled", fmt.Sprint(st.Cancelled)},
	}
	if st.Held > 0 {
		lines = append(lines, reportLine{"Held for apply", fmt.Sprint(st.Held)})
	}
	sort.Slice(notable, func(i, j int) bool { return notable[i].Label < notable[j].Label })
	if len(notable) > maxReportLines {
		more := len(notable) - maxReportLines
		notable = append(notable[:maxReportLines], reportLine{"…", fmt.Sprintf("and %d more; see GET /v1/runs?state=failed", more)})
	}
	text, html := renderReport(subject, lines, notable)
	addrs := make([]string, 0, len(recipients))
	for a := range recipients {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, addr := range addrs {
		err := e.cfg.Mailer.Enqueue(ctx, mail.Message{
			To: addr, Subject: subject, Text: text, HTML: html, Kind: reportKind, AccountID: b.AccountID,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// runOutcomeText is how a batch summary describes one location's run.
func runOutcomeText(o models.BatchRunOutcome) string {
	switch o.State {
	case models.RunFailed:
		return "failed: " + o.ErrorMessage
	case models.RunAwaitingApply:
		return "held for apply (run " + o.RunID + ")"
	}
	return string(o.State)
}

type reportLine struct {
	Label string
	Value string
}

// reportPage is the HTML of every sync report; html/template escapes the
// location names and messages it shows.
var reportPage = template.Must(template.New("report").Parse(`<!doctype html>
<html><body style="font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#1f2933;line-height:1.5">
<h2 style="font-size:18px">{{.Title}}</h2>
<table style="border-collapse:collapse">{{range .Lines}}<tr><th style="text-align:left;padding:2px 12px 2px 0">{{.Label}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
{{if .Notable}}<h3 style="font-size:15px">Locations that need attention</h3>
<table style="border-collapse:collapse">{{range .Notable}}<tr><th style="text-align:left;padding:2px 12px 2px 0">{{.Label}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
{{end}}<p style="font-size:90%;color:#52606d">You receive this because the address is in the location's report e-mails.</p>
</body></html>
`))

// renderReport builds the plain-text and HTML bodies of a report.
func renderReport(title string, lines, notable []reportLine) (text, html string) {
	var t strings.Builder
	t.WriteString(title + "\n\n")
	for _, l := range lines {
		fmt.Fprintf(&t, "%-14s %s\n", l.Label+":", l.Value)
	}
	if len(notable) > 0 {
		t.WriteString("\nLocations that need attention:\n")
		for _, l := range notable {
			fmt.Fprintf(&t, "- %s: %s\n", l.Label, l.Value)
		}
	}
	t.WriteString("\nYou receive this because the address is in the location's report e-mails.\n")
	var h strings.Builder
	// The template is fixed and its values are strings: it cannot fail.
	_ = reportPage.Execute(&h, struct {
		Title          string
		Lines, Notable []reportLine
	}{title, lines, notable})
	return t.String(), h.String()
}

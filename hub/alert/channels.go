package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/redforge/controltower/hub/catalog"
)

// send makes one attempt to deliver a's event d to its channel.
func (e *Engine) send(ctx context.Context, a catalog.Alert, d catalog.AlertDelivery) error {
	u, err := openURL(e.d.Sealer, d.Channel.URL)
	if err != nil {
		return err
	}
	d.Channel.URL = u
	switch d.Channel.Type {
	case channelWebhook:
		return e.post(ctx, d.Channel.URL, webhookPayload(a, d.Event, e.cfg.ExternalURL))
	case channelAM:
		return e.post(ctx, alertmanagerURL(d.Channel.URL), []amAlert{toAM(a, d.Event, e.cfg.ExternalURL, e.now())})
	case channelSlack:
		return e.post(ctx, d.Channel.URL, slackPayload(a, d.Event, e.cfg.ExternalURL))
	case channelEmail:
		return e.cfg.SMTP.send(ctx, d.Channel.To, emailMessage(a, d.Event, e.cfg, d.Channel.To))
	}
	return fmt.Errorf("unknown channel type %q", d.Channel.Type)
}

func (e *Engine) post(ctx context.Context, target string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "redforge-hub-alerts")
	resp, err := e.d.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}

// amAlert is an alert as Alertmanager's API v2 takes it, and as its
// webhook format carries it.
type amAlert struct {
	Status       string            `json:"status,omitempty"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	Fingerprint  string            `json:"fingerprint,omitempty"`
}

// firingHorizon is the endsAt a firing alert is sent to an Alertmanager
// with: the hub sends the resolution itself, so an Alertmanager must not
// resolve it on its own after its resolve_timeout meanwhile.
const firingHorizon = 7 * 24 * time.Hour

func labelsOf(a catalog.Alert) map[string]string {
	l := map[string]string{}
	for k, v := range a.Labels {
		if v != "" {
			l[k] = v
		}
	}
	l["alertname"] = a.RuleName
	l["severity"] = a.Severity
	return l
}

func toAM(a catalog.Alert, event, external string, now time.Time) amAlert {
	out := amAlert{Labels: labelsOf(a), Annotations: map[string]string{"summary": a.Summary, "alert_id": a.ID},
		StartsAt: a.StartsAt, GeneratorURL: generatorURL(external), Fingerprint: a.Active}
	if event == StateResolved {
		out.EndsAt = a.EndsAt
		if out.EndsAt.IsZero() {
			out.EndsAt = now.UTC()
		}
	} else {
		out.EndsAt = now.UTC().Add(firingHorizon)
	}
	return out
}

func generatorURL(external string) string {
	if external == "" {
		return ""
	}
	return strings.TrimRight(external, "/") + "/alerts"
}

func alertmanagerURL(base string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/api/v2/alerts") {
		return base
	}
	return base + "/api/v2/alerts"
}

// webhookMessage is Alertmanager's webhook format (version 4), so any
// receiver written for Alertmanager takes the hub's notifications.
type webhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []amAlert         `json:"alerts"`
}

func webhookPayload(a catalog.Alert, event, external string) webhookMessage {
	am := amAlert{Status: event, Labels: labelsOf(a), Annotations: map[string]string{"summary": a.Summary, "alert_id": a.ID},
		StartsAt: a.StartsAt, GeneratorURL: generatorURL(external), Fingerprint: a.Active}
	if event == StateResolved {
		am.EndsAt = a.EndsAt
	}
	return webhookMessage{Version: "4", GroupKey: "{}:{alertname=" + fmt.Sprintf("%q", a.RuleName) + "}", Status: event,
		Receiver: "redforge", GroupLabels: map[string]string{"alertname": a.RuleName}, CommonLabels: am.Labels,
		CommonAnnotations: am.Annotations, ExternalURL: external, Alerts: []amAlert{am}}
}

func slackPayload(a catalog.Alert, event, external string) map[string]string {
	icon := ":red_circle:"
	if event == StateResolved {
		icon = ":large_green_circle:"
	}
	text := fmt.Sprintf("%s [%s] %s (%s)\n%s", icon, strings.ToUpper(event), a.RuleName, a.Severity, a.Summary)
	if u := generatorURL(external); u != "" {
		text += "\n" + u
	}
	return map[string]string{"text": text}
}

// SMTPConfig is the mail server of email channels. TLS is "starttls"
// (the default: upgrade, or fail), "tls" (implicit TLS, port 465) or
// "none" (plain text; only to a loopback server, such as a local relay).
type SMTPConfig struct {
	Addr     string // host:port
	From     string
	Username string
	Password string
	TLS      string
}

// ErrNoSMTP is returned for an email channel when the hub has no mail
// server (--smtp-addr).
var ErrNoSMTP = errors.New("email channel: the hub has no mail server (--smtp-addr)")

func (c SMTPConfig) send(ctx context.Context, to []string, msg []byte) error {
	if c.Addr == "" || c.From == "" {
		return ErrNoSMTP
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", c.Addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	tlsCfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	var cl *smtp.Client
	switch c.TLS {
	case "tls":
		cl = smtp.NewClient(tls.Client(conn, tlsCfg))
	case "none":
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			conn.Close()
			return fmt.Errorf("smtp: plain text only to a loopback server, not %s", host)
		}
		cl = smtp.NewClient(conn)
	default:
		if cl, err = smtp.NewClientStartTLS(conn, tlsCfg); err != nil {
			conn.Close()
			return err
		}
	}
	defer cl.Close()
	if c.Username != "" {
		if err := cl.Auth(sasl.NewPlainClient("", c.Username, c.Password)); err != nil {
			return err
		}
	}
	if err := cl.SendMail(c.From, to, bytes.NewReader(msg)); err != nil {
		return err
	}
	return cl.Quit()
}

func emailMessage(a catalog.Alert, event string, cfg Config, to []string) []byte {
	subject := fmt.Sprintf("[%s] %s (%s)", strings.ToUpper(event), a.RuleName, a.Severity)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", cfg.SMTP.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%s@redforge>\r\n", a.ID, event)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	body := a.Summary + "\n\nstarted: " + a.StartsAt.Format(time.RFC3339)
	if event == StateResolved {
		body += "\nresolved: " + a.EndsAt.Format(time.RFC3339)
	}
	if u := generatorURL(cfg.ExternalURL); u != "" {
		body += "\n\n" + u
	}
	for _, line := range strings.Split(body, "\n") {
		b.WriteString(strings.TrimRight(line, "\r") + "\r\n")
	}
	return b.Bytes()
}

package hub

import (
	"flag"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"time"

	"github.com/redforge/controltower/hub/metrics"
)

// Defaults of ObservabilityConfig.
const (
	DefaultMetricsInterval = 15 * time.Second
	DefaultAlertInterval   = 5 * time.Second
)

// ObservabilityConfig is the configuration of metrics, fleet analytics
// and alerting.
type ObservabilityConfig struct {
	// GrafanaURL is the Grafana the console embeds the dashboards from
	// (empty: the Analytics page shows the hub's own charts only).
	GrafanaURL string `json:"grafana_url"`
	// LLMPrices is a JSON price table file (metrics.PriceTable) replacing
	// the built-in one.
	LLMPrices string `json:"llm_prices"`
	// MetricsInterval is how often runtimes are sampled (CPU, memory,
	// workflow and LLM metrics) and fleet analytics flushed.
	MetricsInterval time.Duration `json:"metrics_interval"`
	// AlertInterval is how often the leader evaluates alert rules (it also
	// does at once on instance, hub and deployment status events).
	AlertInterval time.Duration `json:"alert_interval"`
	// SMTP: the mail server of email alert channels. The password comes
	// from REDFORGE_SMTP_PASSWORD only.
	SMTPAddr     string `json:"smtp_addr"`
	SMTPFrom     string `json:"smtp_from"`
	SMTPUsername string `json:"smtp_username"`
	SMTPTLS      string `json:"smtp_tls"`
	SMTPPassword string `json:"-"`
}

// observabilityFlags registers the observability flags and returns what
// applies them (flags over REDFORGE_* env over the file).
func observabilityFlags(fs *flag.FlagSet) func(cfg *Config, set map[string]bool, getenv func(string) string) error {
	strs := map[string]*string{
		"grafana-url":   fs.String("grafana-url", "", "Grafana base URL the console embeds the dashboards from, e.g. http://localhost:3001 (env REDFORGE_GRAFANA_URL)"),
		"llm-prices":    fs.String("llm-prices", "", "JSON file of LLM prices per million tokens, replacing the built-in table (env REDFORGE_LLM_PRICES)"),
		"smtp-addr":     fs.String("smtp-addr", "", "mail server host:port for email alerts (env REDFORGE_SMTP_ADDR; password in REDFORGE_SMTP_PASSWORD)"),
		"smtp-from":     fs.String("smtp-from", "", "sender address of email alerts (env REDFORGE_SMTP_FROM)"),
		"smtp-username": fs.String("smtp-username", "", "mail server user (env REDFORGE_SMTP_USERNAME)"),
		"smtp-tls":      fs.String("smtp-tls", "", "starttls (default), tls, or none (loopback servers only) (env REDFORGE_SMTP_TLS)"),
	}
	durs := map[string]*time.Duration{
		"metrics-interval": fs.Duration("metrics-interval", 0, "how often runtimes are sampled and fleet analytics flushed (default 15s)"),
		"alert-interval":   fs.Duration("alert-interval", 0, "how often the leader evaluates alert rules (default 5s)"),
	}
	return func(cfg *Config, set map[string]bool, getenv func(string) string) error {
		c := &cfg.ObservabilityConfig
		for name, ptr := range map[string]*string{"grafana-url": &c.GrafanaURL, "llm-prices": &c.LLMPrices, "smtp-addr": &c.SMTPAddr,
			"smtp-from": &c.SMTPFrom, "smtp-username": &c.SMTPUsername, "smtp-tls": &c.SMTPTLS} {
			if v := getenv(EnvName(name)); v != "" && !set[name] {
				*ptr = v
			}
			if set[name] {
				*ptr = *strs[name]
			}
		}
		for name, ptr := range map[string]*time.Duration{"metrics-interval": &c.MetricsInterval, "alert-interval": &c.AlertInterval} {
			if v := getenv(EnvName(name)); v != "" && !set[name] {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%s: %q is not a duration such as 15s", EnvName(name), v)
				}
				*ptr = d
			}
			if set[name] {
				*ptr = *durs[name]
			}
		}
		c.SMTPPassword = getenv("REDFORGE_SMTP_PASSWORD")
		return nil
	}
}

func (c ObservabilityConfig) metricsInterval() time.Duration {
	if c.MetricsInterval <= 0 {
		return DefaultMetricsInterval
	}
	return c.MetricsInterval
}

func (c ObservabilityConfig) alertInterval() time.Duration {
	if c.AlertInterval <= 0 {
		return DefaultAlertInterval
	}
	return c.AlertInterval
}

// validateObservability returns every problem of the observability
// settings.
func (c Config) validateObservability() []error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	o := c.ObservabilityConfig
	if o.GrafanaURL != "" {
		if u, err := url.Parse(o.GrafanaURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("grafana-url", "%q is not an http(s)://host URL", o.GrafanaURL)
		}
	}
	if o.LLMPrices != "" {
		if _, err := metrics.LoadPrices(o.LLMPrices); err != nil {
			bad("llm-prices", "%v", err)
		}
	}
	if o.MetricsInterval != 0 && o.MetricsInterval < time.Second {
		bad("metrics-interval", "must be at least 1s")
	}
	if o.AlertInterval != 0 && o.AlertInterval < 100*time.Millisecond {
		bad("alert-interval", "must be at least 100ms")
	}
	if o.SMTPAddr != "" {
		if _, _, err := net.SplitHostPort(o.SMTPAddr); err != nil {
			bad("smtp-addr", "%q is not host:port", o.SMTPAddr)
		}
		if a, err := mail.ParseAddress(o.SMTPFrom); err != nil || a.Address == "" {
			bad("smtp-from", "must be the sender's address when --smtp-addr is set")
		}
	}
	switch o.SMTPTLS {
	case "", "starttls", "tls", "none":
	default:
		bad("smtp-tls", "%q is not starttls, tls or none", o.SMTPTLS)
	}
	return errs
}

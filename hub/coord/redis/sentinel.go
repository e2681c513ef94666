package redis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/hub/coord"
)

// SentinelScheme is the URL scheme of a Redis reached through Redis
// Sentinel:
//
//	redis-sentinel://[[user]:password@]host:port[,host:port…]/master[/db][?sentinel_password=…&sentinel_username=…]
//
// The hosts are the Sentinels, master is the name they monitor, and the
// user and password are those of the Redis master and replicas. The
// Sentinels' own credentials, when they need any, go in the query.
const SentinelScheme = "redis-sentinel"

// SentinelURL is a parsed redis-sentinel:// URL.
type SentinelURL struct {
	Sentinels        []string // host:port of each Sentinel, in URL order
	Master           string   // the master name the Sentinels monitor
	DB               int
	Username         string // of the Redis master and replicas
	Password         string
	SentinelUsername string
	SentinelPassword string
	// HoldReplicas is the hold_replicas option: how many replicas must
	// have a hold-queue write before it returns (default 1).
	HoldReplicas int
}

// URLError is a malformed Redis URL. Field names the part of the URL at
// fault ("sentinels", "master", "db", "password", or a query option).
type URLError struct {
	Field   string
	Message string
}

func (e *URLError) Error() string {
	return fmt.Sprintf("%s: %s (want %s://[:password@]host:port,host:port,…/master/db)", e.Field, e.Message, SentinelScheme)
}

// IsSentinelURL reports whether raw is a redis-sentinel:// URL.
func IsSentinelURL(raw string) bool {
	return strings.HasPrefix(strings.ToLower(raw), SentinelScheme+"://")
}

// ParseSentinelURL parses a redis-sentinel:// URL. Its errors are
// *URLError, name the part at fault and never contain the password.
func ParseSentinelURL(raw string) (*SentinelURL, error) {
	if !IsSentinelURL(raw) {
		return nil, &URLError{Field: "scheme", Message: "is not " + SentinelScheme}
	}
	rest := raw[len(SentinelScheme)+3:]
	s := &SentinelURL{HoldReplicas: 1}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		info := rest[:i]
		rest = rest[i+1:]
		user, pass, ok := strings.Cut(info, ":")
		var err error
		if s.Username, err = url.PathUnescape(user); err != nil {
			return nil, &URLError{Field: "user", Message: "is not URL-escaped properly"}
		}
		if ok {
			if s.Password, err = url.PathUnescape(pass); err != nil {
				return nil, &URLError{Field: "password", Message: "is not URL-escaped properly"}
			}
		}
	}
	rest, query, _ := strings.Cut(rest, "?")
	hosts, path, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return nil, &URLError{Field: "sentinels", Message: "no Sentinel address"}
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return nil, &URLError{Field: "sentinels", Message: fmt.Sprintf("%q is not host:port", h)}
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, &URLError{Field: "sentinels", Message: fmt.Sprintf("%q has no valid port", h)}
		}
		s.Sentinels = append(s.Sentinels, net.JoinHostPort(host, port))
	}
	parts := strings.Split(path, "/")
	if parts[0] == "" {
		return nil, &URLError{Field: "master", Message: "no master name after the Sentinel addresses"}
	}
	master, err := url.PathUnescape(parts[0])
	if err != nil {
		return nil, &URLError{Field: "master", Message: "is not URL-escaped properly"}
	}
	s.Master = master
	switch {
	case len(parts) > 2 && !(len(parts) == 3 && parts[2] == ""):
		return nil, &URLError{Field: "db", Message: "unexpected path after the database number"}
	case len(parts) >= 2 && parts[1] != "":
		db, err := strconv.Atoi(parts[1])
		if err != nil || db < 0 {
			return nil, &URLError{Field: "db", Message: fmt.Sprintf("%q is not a database number", parts[1])}
		}
		s.DB = db
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, &URLError{Field: "query", Message: "is not a valid query string"}
	}
	for k, v := range q {
		switch k {
		case "sentinel_password":
			s.SentinelPassword = v[len(v)-1]
		case "sentinel_username":
			s.SentinelUsername = v[len(v)-1]
		case "hold_replicas":
			n, err := strconv.Atoi(v[len(v)-1])
			if err != nil || n < 0 {
				return nil, &URLError{Field: k, Message: fmt.Sprintf("%q is not a number of replicas", v[len(v)-1])}
			}
			s.HoldReplicas = n
		default:
			return nil, &URLError{Field: k, Message: "unknown option (known: sentinel_password, sentinel_username, hold_replicas)"}
		}
	}
	return s, nil
}

// Redacted returns the URL with the passwords replaced, for logs and errors.
func (s *SentinelURL) Redacted() string {
	var b strings.Builder
	b.WriteString(SentinelScheme + "://")
	if s.Username != "" || s.Password != "" {
		b.WriteString(url.PathEscape(s.Username))
		if s.Password != "" {
			b.WriteString(":xxxxx")
		}
		b.WriteString("@")
	}
	b.WriteString(strings.Join(s.Sentinels, ","))
	fmt.Fprintf(&b, "/%s/%d", url.PathEscape(s.Master), s.DB)
	var q []string
	if s.SentinelUsername != "" {
		q = append(q, "sentinel_username="+url.QueryEscape(s.SentinelUsername))
	}
	if s.SentinelPassword != "" {
		q = append(q, "sentinel_password=xxxxx")
	}
	if s.HoldReplicas != 1 {
		q = append(q, "hold_replicas="+strconv.Itoa(s.HoldReplicas))
	}
	if len(q) > 0 {
		b.WriteString("?" + strings.Join(q, "&"))
	}
	return b.String()
}

// failoverOptions returns go-redis's options for s.
func (s *SentinelURL) failoverOptions() *goredis.FailoverOptions {
	return &goredis.FailoverOptions{
		MasterName:       s.Master,
		SentinelAddrs:    append([]string(nil), s.Sentinels...),
		Username:         s.Username,
		Password:         s.Password,
		SentinelUsername: s.SentinelUsername,
		SentinelPassword: s.SentinelPassword,
		DB:               s.DB,
	}
}

// degraded is a Ping error while coordination works in part: the master
// is unreachable but the Sentinels answer (the outage should end by itself
// once they have promoted a replica), or the master has fewer replicas
// than hold writes wait for. Degraded tells the health endpoint so.
type degraded struct {
	err    error
	reason string
}

func (e *degraded) Error() string  { return e.reason + ": " + e.err.Error() }
func (e *degraded) Unwrap() error  { return e.err }
func (e *degraded) Degraded() bool { return true }

// checkReplicas returns a *degraded error when the master has fewer
// connected replicas than want.
func checkReplicas(ctx context.Context, client *goredis.Client, want int) error {
	info, err := client.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	have := -1
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			have, _ = strconv.Atoi(v)
		}
	}
	if have < want {
		return &degraded{err: coord.ErrNotReplicated, reason: fmt.Sprintf(
			"the Redis master has %d connected replicas, hold writes wait for %d (held messages are kept but not replicated)", max(have, 0), want)}
	}
	return nil
}

// sentinelView is what one Sentinel says about the master.
type sentinelView struct {
	addr   string
	master string // ip:port, "" when unknown
	flags  string // the master's flags as that Sentinel sees them
	err    error
}

// askSentinels asks every Sentinel of s, concurrently, what it knows of
// the master, within timeout.
func askSentinels(ctx context.Context, s *SentinelURL, timeout time.Duration) []sentinelView {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	views := make([]sentinelView, len(s.Sentinels))
	var wg sync.WaitGroup
	for i, addr := range s.Sentinels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			views[i] = askSentinel(ctx, s, addr)
		}()
	}
	wg.Wait()
	return views
}

func askSentinel(ctx context.Context, s *SentinelURL, addr string) sentinelView {
	v := sentinelView{addr: addr}
	sc := goredis.NewSentinelClient(&goredis.Options{
		Addr: addr, Username: s.SentinelUsername, Password: s.SentinelPassword,
		DialTimeout: DefaultDialTimeout, MaxRetries: -1, ContextTimeoutEnabled: true, DisableIdentity: true,
	})
	defer sc.Close()
	m, err := sc.Master(ctx, s.Master).Result()
	switch {
	case err != nil && strings.Contains(err.Error(), "No such master"):
		v.err = fmt.Errorf("monitors no master named %q", s.Master)
	case err != nil:
		v.err = err
	default:
		v.master = net.JoinHostPort(m["ip"], m["port"])
		v.flags = m["flags"]
	}
	return v
}

// diagnose explains, in one line without passwords, why the master of s
// cannot be reached, from what the Sentinels say. It returns a
// *degraded when some Sentinel knows the master (so the outage is one
// they can end), else a plain error.
func diagnose(ctx context.Context, s *SentinelURL, cause error, timeout time.Duration) error {
	views := askSentinels(ctx, s, timeout)
	var answers, failures []string
	masters := map[string]bool{}
	for _, v := range views {
		switch {
		case v.err != nil:
			failures = append(failures, fmt.Sprintf("%s: %v", v.addr, v.err))
		default:
			masters[v.master] = true
			answers = append(answers, fmt.Sprintf("%s: master %s (%s)", v.addr, v.master, v.flags))
		}
	}
	sort.Strings(answers)
	tried := "sentinels tried " + strings.Join(s.Sentinels, ", ")
	if len(answers) == 0 {
		return &oneLine{err: cause, msg: fmt.Sprintf("no Redis master known for %q (%s): %s",
			s.Master, tried, strings.Join(failures, "; "))}
	}
	reason := fmt.Sprintf("Redis master of %q unreachable, Sentinel failover expected (%s; %s",
		s.Master, tried, strings.Join(answers, "; "))
	if len(failures) > 0 {
		reason += "; " + strings.Join(failures, "; ")
	}
	return &degraded{err: &oneLine{err: cause, msg: flatten(cause.Error())}, reason: reason + ")"}
}

// oneLine is an error whose text is msg (one line) and that wraps err.
type oneLine struct {
	err error
	msg string
}

func (e *oneLine) Error() string { return e.msg }
func (e *oneLine) Unwrap() error { return e.err }

// flatten puts a (joined, multi-line) error text on one line.
func flatten(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

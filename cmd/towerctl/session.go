package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// session is what `towerctl login` keeps on disk (0600) so later commands
// are authenticated.
type session struct {
	Hub          string    `json:"hub"`
	Username     string    `json:"username"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresAt    time.Time `json:"expires_at"`
}

func sessionPath(getenv func(string) string) string {
	if p := getenv("REDFORGE_SESSION_FILE"); p != "" {
		return p
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "redforge", "towerctl.json")
}

func loadSession(path string) (session, error) {
	var s session
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

func saveSession(path string, s session) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type tokensResponse struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// authenticate gives the client a token: REDFORGE_TOKEN wins; else the
// saved session for this hub, refreshed when its access token expired.
func (cl *Client) authenticate(ctx context.Context) error {
	if cl.token != "" {
		return nil
	}
	s, err := loadSession(cl.sessionFile)
	if err != nil || s.Hub != cl.base.String() {
		return nil // unauthenticated; the hub will say 401 and we say how to log in
	}
	if time.Until(s.ExpiresAt) > 30*time.Second {
		cl.token = s.AccessToken
		return nil
	}
	var t tokensResponse
	body := strings.NewReader(fmt.Sprintf(`{"refresh_token":%q}`, s.RefreshToken))
	if _, err := cl.do(ctx, http.MethodPost, "/api/auth/refresh", body, &t); err != nil {
		return fmt.Errorf("session expired (%v); run towerctl login", err)
	}
	s.AccessToken, s.RefreshToken, s.ExpiresAt = t.AccessToken, t.RefreshToken, t.ExpiresAt
	cl.token = s.AccessToken
	return saveSession(cl.sessionFile, s)
}

func runLogin(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("login")
	user := fs.String("username", "admin", "user to log in as")
	stdin := fs.Bool("password-stdin", false, "read the password from standard input")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pw := cl.getenv("REDFORGE_PASSWORD")
	if *stdin || pw == "" {
		if !*stdin {
			fmt.Fprint(out, "password: ")
		}
		line, err := bufio.NewReader(cl.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	body, _ := json.Marshal(map[string]string{"username": *user, "password": pw})
	var t tokensResponse
	if _, err := cl.do(ctx, http.MethodPost, "/api/auth/login", strings.NewReader(string(body)), &t); err != nil {
		return err
	}
	s := session{Hub: cl.base.String(), Username: *user, AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresAt: t.ExpiresAt}
	if err := saveSession(cl.sessionFile, s); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	fmt.Fprintf(out, "logged in to %s as %s\n", cl.base.Host, *user)
	return nil
}

func runLogout(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if err := cl.authenticate(ctx); err != nil {
		return err
	}
	if _, err := cl.do(ctx, http.MethodPost, "/api/auth/logout", nil, nil); err != nil {
		return err
	}
	_ = os.Remove(cl.sessionFile)
	fmt.Fprintln(out, "logged out")
	return nil
}

package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/coord"
)

// LoginState is where the per-account login delay is kept: hub/coord's KV,
// in memory on one hub or in Redis, where every hub of a region sees the
// same delay for an account.
type LoginState interface {
	Get(ctx context.Context, key string) ([]byte, error)
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, key string) error
}

// The per-account login delay, beside the per-address limit
// (LoginAttemptsPerMinute): after LoginFreeAttempts attempts without a
// success for one username, the next attempt must wait LoginDelayBase,
// then twice as long after each further failure, up to LoginDelayMax.
// An attempt made during the delay is answered 429 with Retry-After and
// does not count; the password is not checked. There is no lockout: the
// right password after the delay logs in, so an attacker can slow a
// user's login by at most LoginDelayMax, never block it. The count is
// forgotten LoginFailureMemory after the last attempt, and at a success.
const (
	LoginFreeAttempts  = 3
	LoginDelayBase     = time.Second
	LoginDelayMax      = 30 * time.Second
	LoginFailureMemory = 15 * time.Minute
)

// loginFailures is the per-account state kept in LoginState.
type loginFailures struct {
	// Attempts is the number of attempts since the last success,
	// including one whose password check may still be running.
	Attempts int `json:"n"`
	// UntilMs is when the next attempt is allowed (Unix milliseconds).
	UntilMs int64 `json:"until"`
}

// loginDelay is the wait after attempts failures.
func loginDelay(attempts int) time.Duration {
	if attempts < LoginFreeAttempts {
		return 0
	}
	d := LoginDelayBase
	for i := LoginFreeAttempts; i < attempts && d < LoginDelayMax; i++ {
		d *= 2
	}
	return min(d, LoginDelayMax)
}

// loginKey is the LoginState key of username: hashed, so its length is
// bounded whatever is sent, and folded to lower case as usernames are
// unique regardless of case.
func loginKey(username string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(username)))
	return "login:account:" + hex.EncodeToString(sum[:16])
}

// claimLoginAttempt counts an attempt for username before its password is
// checked, so that concurrent attempts cannot slip through together: it
// returns how long the caller must wait instead (0: go ahead). The count
// and the next delay are written with a compare-and-swap; losing it to
// concurrent attempts more than a few times answers a short wait.
func claimLoginAttempt(ctx context.Context, st LoginState, username string, now time.Time) (time.Duration, error) {
	key := loginKey(username)
	for range 4 {
		old, err := st.Get(ctx, key)
		var f loginFailures
		switch {
		case errors.Is(err, coord.ErrNotFound):
			old = nil
		case err != nil:
			return 0, err
		default:
			_ = json.Unmarshal(old, &f) // a damaged entry counts as none
		}
		if until := time.UnixMilli(f.UntilMs); now.Before(until) {
			return until.Sub(now), nil
		}
		f.Attempts++
		delay := loginDelay(f.Attempts)
		f.UntilMs = now.Add(delay).UnixMilli()
		val, _ := json.Marshal(f)
		var ok bool
		if old == nil {
			ok, err = st.SetNX(ctx, key, val, LoginFailureMemory+delay)
		} else {
			ok, err = st.CompareAndSwap(ctx, key, old, val, LoginFailureMemory+delay)
		}
		if err != nil {
			return 0, err
		}
		if ok {
			return 0, nil
		}
	}
	return LoginDelayBase, nil
}

// forgetLoginAttempts clears username's count after a success.
func forgetLoginAttempts(ctx context.Context, st LoginState, username string) error {
	return st.Delete(ctx, loginKey(username))
}

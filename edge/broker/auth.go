package broker

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// FlowUserPrefix starts the username of a per-flow credential
// (FlowCredential): "flow:" and the id of the Node-RED mqtt-broker node
// that uses it.
const FlowUserPrefix = "flow:"

// topicRoot is the first level of the record topics (TopicPrefix).
const topicRoot = "redforge"

// Auth is the broker's auth hook. A client must connect from one of Nets
// and, unless AllowAnonymous, authenticate: as a user of Users (password
// checked against its bcrypt hash), or with a per-flow credential derived
// from FlowKey (FlowCredential), which the edge's agent hands to the local
// Node-RED. Then the ACL:
//
//   - $SYS and every other $ topic (but $share subscriptions) are closed
//     to everyone, the admin included;
//   - any client may publish to other topics, the record streams
//     (redforge/v1/…) among them;
//   - only the Admin user (and every client in the open mode) may
//     subscribe to a filter that can match a topic under redforge/ — the
//     records other clients published — such as #, +/…, redforge/v1/# or
//     redforge/v1/audit itself. Other clients subscribe to their own
//     topics: a wildcard is allowed after a literal first level other
//     than redforge (sensors/+/temp), so no wildcard reads everything.
//
// AllowAnonymous is the open mode, for a closed appliance or a trial:
// every client from Nets connects with any or no credentials and may
// subscribe to any topic but $SYS. The edge warns when it runs so.
type Auth struct {
	mqtt.HookBase
	// Nets are the networks clients may connect from. Default:
	// DefaultLocalNets (set by NewAuth).
	Nets []netip.Prefix
	// Users maps a username to the bcrypt hash of its password.
	Users map[string][]byte
	// Admin is the user who may subscribe to the record streams and to
	// wildcards over every topic. Empty: nobody.
	Admin string
	// FlowKey derives the per-flow credentials; nil: none are accepted.
	FlowKey []byte
	// AllowAnonymous admits clients without credentials (the open mode).
	AllowAnonymous bool
}

var _ mqtt.Hook = (*Auth)(nil)

// NewAuth returns an Auth admitting clients from DefaultLocalNets that
// authenticate as one of users (bcrypt hashes by name) or with a per-flow
// credential of flowKey.
func NewAuth(users map[string][]byte, admin string, flowKey []byte) *Auth {
	return &Auth{Nets: DefaultLocalNets(), Users: users, Admin: admin, FlowKey: slices.Clone(flowKey)}
}

// NewLocalAuth returns the open mode: every client from nets connects
// without credentials.
func NewLocalAuth(nets []netip.Prefix) *Auth {
	return &Auth{Nets: slices.Clone(nets), AllowAnonymous: true}
}

// ID returns the hook's id.
func (a *Auth) ID() string { return "redforge-auth" }

// Provides reports that the hook handles connect authentication and ACL checks.
func (a *Auth) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate admits a client from a.Nets that authenticates
// (or any, in the open mode). Refusals are logged without the password.
func (a *Auth) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if !a.fromLocalNet(cl) {
		a.refuse(cl, "address not in local networks")
		return false
	}
	if a.AllowAnonymous {
		return true
	}
	user, pass := string(pk.Connect.Username), pk.Connect.Password
	switch {
	case !pk.Connect.UsernameFlag || user == "":
		a.refuse(cl, "no credentials")
		return false
	case strings.HasPrefix(user, FlowUserPrefix):
		if len(a.FlowKey) > 0 && hmac.Equal(pass, []byte(flowPassword(a.FlowKey, user))) {
			return true
		}
	default:
		if hash, ok := a.Users[user]; ok && bcrypt.CompareHashAndPassword(hash, pass) == nil {
			return true
		}
	}
	a.refuse(cl, "bad username or password")
	return false
}

func (a *Auth) fromLocalNet(cl *mqtt.Client) bool {
	ap, err := netip.ParseAddrPort(cl.Net.Remote)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, n := range a.Nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

func (a *Auth) refuse(cl *mqtt.Client, why string) {
	if a.Log != nil {
		a.Log.Warn("mqtt client refused: "+why, logKeyClient, cl.ID, logKeyRemote, cl.Net.Remote,
			"username", truncate(string(cl.Properties.Username), 64))
	}
}

// OnACLCheck applies the ACL of the type comment to a publish (write) or
// a subscription filter (read).
func (a *Auth) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if !write {
		if rest, ok := strings.CutPrefix(topic, "$share/"); ok {
			if _, filter, ok := strings.Cut(rest, "/"); ok {
				topic = filter
			}
		}
	}
	if strings.HasPrefix(topic, "$") {
		return false // $SYS and other broker topics are closed
	}
	if write || a.AllowAnonymous || (a.Admin != "" && string(cl.Properties.Username) == a.Admin) {
		return true
	}
	first, _, _ := strings.Cut(topic, "/")
	return first != "#" && first != "+" && first != topicRoot
}

// FlowCredential returns the credential of the Node-RED mqtt-broker node
// nodeID: username "flow:<nodeID>" and a password derived from key, so the
// broker checks it without storing it and it stays the same across
// deploys and restarts.
func FlowCredential(key []byte, nodeID string) (user, password string) {
	user = FlowUserPrefix + nodeID
	return user, flowPassword(key, user)
}

func flowPassword(key []byte, user string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ReadUsers reads a users file: one "name:bcrypt-hash" a line (as
// `htpasswd -nB name` prints), blank lines and lines starting with #
// ignored. It returns the hashes by name, or an error naming the line.
func ReadUsers(r io.Reader) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || name == "":
			return nil, fmt.Errorf("line %d: want name:bcrypt-hash", n)
		case strings.HasPrefix(name, FlowUserPrefix):
			return nil, fmt.Errorf("line %d: user names starting with %q are the per-flow credentials'", n, FlowUserPrefix)
		case users[name] != nil:
			return nil, fmt.Errorf("line %d: user %q appears twice", n, name)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d: user %q: not a bcrypt hash (make one with htpasswd -nB %s)", n, name, name)
		}
		users[name] = []byte(hash)
	}
	return users, sc.Err()
}

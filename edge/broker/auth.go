package broker

import (
	"net/netip"
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// LocalAuth is the interim auth hook: a client may connect if its address
// is in Nets, and may then publish and subscribe to any topic. It has no
// credentials; a later change replaces it (through Config.Auth) with
// per-client credentials and topic ACLs.
type LocalAuth struct {
	mqtt.HookBase
	Nets []netip.Prefix
}

var _ mqtt.Hook = (*LocalAuth)(nil)

// NewLocalAuth returns a LocalAuth admitting clients from nets.
func NewLocalAuth(nets []netip.Prefix) *LocalAuth {
	return &LocalAuth{Nets: slices.Clone(nets)}
}

// ID returns the hook's id.
func (a *LocalAuth) ID() string { return "redforge-local-auth" }

// Provides reports that the hook handles connect authentication and ACL checks.
func (a *LocalAuth) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate admits a client whose remote address is in a.Nets.
func (a *LocalAuth) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
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
	if a.Log != nil {
		a.Log.Warn("mqtt client refused: address not in local networks", logKeyClient, cl.ID, logKeyRemote, cl.Net.Remote)
	}
	return false
}

// OnACLCheck allows every topic to every admitted client.
func (a *LocalAuth) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return true
}

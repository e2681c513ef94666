package hub_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/hub/broker"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestCredentialsArePerInstance: each instance's credentials are random
// and its own: the token, bus password and admin password of one
// authenticate nothing of another; none is in the Raft log or snapshots
// in clear; the token dies with its instance.
func TestCredentialsArePerInstance(t *testing.T) {
	h := hubtest.Start(t)
	for _, n := range []string{"alpha", "beta"} {
		h.JSON(t, "POST", "/api/instances", map[string]any{"name": n, "secret_env": map[string]string{"API_KEY": "sk-live-" + n + "-0123456789"}}, 201, nil)
	}
	alpha := placed(t, h, "alpha")
	beta := placed(t, h, "beta")
	ctx := t.Context()
	creds := func(name string) (tok, mqtt, admin string) {
		row, err := h.State.InstanceByName(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := h.Instances.RuntimeCredentials(ctx, row)
		if err != nil {
			t.Fatal(err)
		}
		return c.Token, c.MQTTPassword, c.AdminPassword
	}
	aTok, aMQTT, aAdmin := creds("alpha")
	bTok, bMQTT, bAdmin := creds("beta")
	if aTok == bTok || aMQTT == bMQTT || aAdmin == bAdmin || len(aAdmin) < 24 {
		t.Fatalf("credentials are not distinct random secrets")
	}

	// The token: its own instance's checkpoints only.
	post := func(tok, instance string) int {
		code, _ := h.Do(t, "POST", "/api/checkpoints", tok, map[string]any{"workflow_id": "w", "step": "s", "state": map[string]any{}, "instance_id": instance})
		return code
	}
	if code := post(aTok, alpha.ID); code != http.StatusCreated {
		t.Fatalf("alpha's token on alpha's checkpoint: %d", code)
	}
	if code := post(aTok, beta.ID); code != http.StatusForbidden {
		t.Fatalf("alpha's token on beta's checkpoint: %d, want 403", code)
	}

	// The bus password: alpha's does not log in as beta.
	bus := h.Bus.(*broker.Embedded).Addr()
	connect := func(user, pw string) error {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + bus).SetClientID("probe-" + user).
			SetUsername(user).SetPassword(pw).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false))
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	if err := connect(alpha.ID, aMQTT); err != nil {
		t.Fatalf("alpha with its own bus password: %v", err)
	}
	if err := connect(beta.ID, aMQTT); err == nil {
		t.Fatalf("alpha's bus password logged in as beta")
	}

	// The admin password: alpha's does not open beta's Node-RED.
	waitRunning := func(name string) instance {
		var inst instance
		testenv.WaitFor(t, 2*time.Minute, name+" running", func() error {
			inst = placed(t, h, name)
			if inst.Allocations[0].Status != "running" {
				return fmt.Errorf("%s", inst.Allocations[0].Status)
			}
			return nil
		})
		return inst
	}
	beta = waitRunning("beta")
	login := func(addr, pw string) int {
		form := "client_id=node-red-admin&grant_type=password&scope=*&username=redforge-hub&password=" + pw
		resp, err := http.Post("http://"+addr+fleet.AdminRoot+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := login(beta.Allocations[0].Address, bAdmin); code != 200 {
		t.Fatalf("beta's admin password on beta: %d", code)
	}
	if code := login(beta.Allocations[0].Address, aAdmin); code != 403 && code != 401 {
		t.Fatalf("alpha's admin password on beta: %d, want refused", code)
	}

	// Nothing in clear in the Raft log and snapshots.
	if err := h.Raft.Snapshot(); err != nil && !strings.Contains(err.Error(), "nothing new") {
		t.Fatalf("snapshot: %v", err)
	}
	secrets := []string{aTok, aMQTT, aAdmin, bTok, bMQTT, bAdmin, "sk-live-alpha-0123456789"}
	filepath.Walk(filepath.Join(h.Config.DataDir, "raft"), func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a runtime secret in clear", path)
			}
		}
		return nil
	})

	// Deleting the instance deletes its token.
	h.JSON(t, "DELETE", "/api/instances/alpha", nil, 200, nil)
	if code := post(aTok, alpha.ID); code != http.StatusUnauthorized {
		t.Fatalf("a deleted instance's token: %d, want 401", code)
	}
	if _, err := h.State.InstanceCredentials(alpha.ID); err == nil {
		t.Fatalf("a deleted instance's credentials remain in the catalog")
	}
	_ = ctx
}

// TestRuntimeBusACL: on the hub's broker a runtime's credentials may not
// read '#' nor write another instance's control topic; its own topics
// work.
func TestRuntimeBusACL(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "mine", "desired_state": "stopped"}, 201, nil)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "theirs", "desired_state": "stopped"}, 201, nil)
	mine, err := h.State.InstanceByName("mine")
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.Instances.RuntimeCredentials(t.Context(), mine)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	unsub, err := h.Bus.Subscribe(context.Background(), "theirs/control", 1, func(topic string, _ []byte) { got <- topic })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	own := make(chan string, 16)
	unsub2, err := h.Bus.Subscribe(context.Background(), "mine/control/ack", 1, func(topic string, _ []byte) { own <- topic })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub2()
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + h.Bus.(*broker.Embedded).Addr()).SetClientID("mine-r0").
		SetUsername(mine.ID).SetPassword(c.MQTTPassword).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect with the runtime's credentials: %v", tok.Error())
	}
	defer cl.Disconnect(0)
	for filter, ok := range map[string]bool{"#": false, "theirs/in/#": false, "$SYS/#": false, "mine/in/#": true, "$share/mine/mine/in/#": true} {
		tok := cl.Subscribe(filter, 1, func(paho.Client, paho.Message) {})
		tok.WaitTimeout(5 * time.Second)
		res := tok.(*paho.SubscribeToken).Result()[filter]
		if granted := res < 0x80; granted != ok {
			t.Errorf("subscribe %q: granted %v (code %#x), want %v", filter, granted, res, ok)
		}
	}
	// A forbidden QoS 0 publish is dropped; the own ack sent after it on
	// the same connection arrives, so by then the first would have too.
	cl.Publish("theirs/control", 0, false, []byte(`{"mode":"drain"}`)).WaitTimeout(5 * time.Second)
	cl.Publish("mine/control/ack", 1, false, []byte(`{"mode":"ping","inflight":0}`)).WaitTimeout(5 * time.Second)
	select {
	case <-own:
	case <-time.After(10 * time.Second):
		t.Fatal("the runtime's own ack never reached the hub")
	}
	select {
	case tp := <-got:
		t.Fatalf("a runtime published to another instance's %s", tp)
	default:
	}
	// A forbidden QoS 1 publish from an MQTT 3.1.1 client ends its
	// connection (mochi: not authorized), and is not delivered either.
	cl.Publish("theirs/control", 1, false, []byte(`{"mode":"drain"}`)).WaitTimeout(5 * time.Second)
	testenv.WaitFor(t, 10*time.Second, "the offending client disconnected", func() error {
		if cl.IsConnectionOpen() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	select {
	case tp := <-got:
		t.Fatalf("a runtime published to another instance's %s", tp)
	default:
	}
}

package edgecheck

import (
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Payload builds a valid record of stream; id is unique in the test.
func Payload(stream string, id int) string {
	switch stream {
	case "vectors":
		return fmt.Sprintf(`{"id":"v%d","vector":[%d.5,-0.25,1e-3,%d],"metadata":{"n":%d}}`, id, id%97, id, id)
	case "audit":
		return fmt.Sprintf(`{"action":"edge.test","resource_type":"rec","resource_id":"%d","details":{}}`, id)
	case "ai_decisions":
		return fmt.Sprintf(`{"flow_name":"f","model":"m","prompt":"p%d","response":"r","confidence":0.5,"tokens_used":%d,"latency_ms":1}`, id, id)
	case "checkpoints":
		return fmt.Sprintf(`{"workflow_id":"w","step":%d,"state":{}}`, id)
	}
	return fmt.Sprintf(`{"name":"m","value":%d,"labels":{}}`, id)
}

// Publish sends ids [from, to) round-robin over Streams to the broker at
// addr at QoS 1, with up to window publishes in flight, as MQTTUser. It
// returns the PUBACKed records, and an error when it could not connect or
// a publish went unacked (the connection dropped): it stops there.
func Publish(addr, clientID string, from, to, window int) ([]Published, error) {
	c := paho.NewClient(MQTTOptions("tcp://" + addr).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second).SetCleanSession(true))
	if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		return nil, fmt.Errorf("connect: %v", tk.Error())
	}
	defer c.Disconnect(0)
	type inflight struct {
		rec Published
		tok paho.Token
	}
	var acked []Published
	q := make([]inflight, 0, window)
	drain := func(n int) error {
		for len(q) > n {
			f := q[0]
			q = q[1:]
			if !f.tok.WaitTimeout(15*time.Second) || f.tok.Error() != nil {
				return fmt.Errorf("publish not acked: %v", f.tok.Error())
			}
			acked = append(acked, f.rec)
		}
		return nil
	}
	for id := from; id < to; id++ {
		s := Streams[id%len(Streams)]
		r := Published{Stream: s, Payload: Payload(s, id)}
		q = append(q, inflight{r, c.Publish("redforge/v1/"+s, 1, false, r.Payload)})
		if err := drain(window - 1); err != nil {
			return acked, err
		}
	}
	return acked, drain(0)
}

package mqttbench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/testenv"
)

// TestPublishToMosquitto publishes 5000 QoS 1 messages with a window of
// 64 to a real Mosquitto and gets every PUBACK.
func TestPublishToMosquitto(t *testing.T) {
	addr := strings.TrimPrefix(testenv.Mosquitto(t), "tcp://")
	p, err := Dial(addr, "mqttbench-test", 64)
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.Run("redforge/v1/metrics", 0, 5000, 1, func(i int) []byte { return fmt.Appendf(nil, `{"i":%d}`, i) })
	if err != nil || n != 5000 {
		t.Fatalf("%d of 5000 PUBACKed: %v", n, err)
	}
}

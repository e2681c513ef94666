package outbox

import (
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when one leaves a goroutine behind.
// REDFORGE_OUTBOX_SEGMENT_THRESHOLD and REDFORGE_OUTBOX_SEGMENT_SIZE run
// every test with other segment defaults (threshold 1: every non-empty
// payload in a segment file; a small size: segments roll all the time).
func TestMain(m *testing.M) {
	if v, err := strconv.Atoi(os.Getenv("REDFORGE_OUTBOX_SEGMENT_THRESHOLD")); err == nil {
		newSegmentThreshold = v
	}
	if v, err := strconv.ParseInt(os.Getenv("REDFORGE_OUTBOX_SEGMENT_SIZE"), 10, 64); err == nil {
		newSegmentSize = v
	}
	goleak.VerifyTestMain(m)
}

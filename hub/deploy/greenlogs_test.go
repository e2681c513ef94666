package deploy

import (
	"strings"
	"testing"
)

// TestLastLines: the kept log is the last lines, oldest first, each cut
// to maxGreenLogLine, all within maxGreenLogBytes.
func TestLastLines(t *testing.T) {
	var b strings.Builder
	for i := range 300 {
		b.WriteString("line ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("\r\n")
	}
	got := lastLines([]byte(b.String()), GreenLogLines)
	if len(got) != GreenLogLines || got[len(got)-1] != "line "+strings.Repeat("x", 299%7) || strings.HasSuffix(got[0], "\r") {
		t.Fatalf("last lines: %d, last %q, first %q", len(got), got[len(got)-1], got[0])
	}
	if got := lastLines(nil, GreenLogLines); got == nil || len(got) != 0 {
		t.Fatalf("empty log: %#v", got)
	}
	long := strings.Repeat("y", 10*maxGreenLogLine)
	huge := strings.Repeat(long+"\n", 100)
	got = lastLines([]byte(huge), GreenLogLines)
	size := 0
	for _, l := range got {
		size += len(l)
		if len(l) != maxGreenLogLine {
			t.Fatalf("a line of %d bytes kept", len(l))
		}
	}
	if size > maxGreenLogBytes || len(got) != maxGreenLogBytes/maxGreenLogLine {
		t.Fatalf("kept %d lines, %d bytes", len(got), size)
	}
}

package metrics

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// runtimeLabelNames label every series of one runtime (one replica of one
// catalog row): the logical instance's id and name, the deployment color
// and the replica index.
var runtimeLabelNames = []string{"instance_id", "name", "color", "replica"}

// RuntimeLabels are the labels of one replica of a catalog row. A color
// row made by a blue-green deployment is named "{name}.{color}" with id
// "{id}-{color}"; its series carry the logical instance's id and name and
// the color, so the blue and green runtimes of one instance never share a
// series while dashboards still group by instance_id. Any other row is
// its own logical instance, with an empty color.
func RuntimeLabels(rowID, rowName string, replica int) prometheus.Labels {
	id, name, color := LogicalOf(rowID, rowName)
	return prometheus.Labels{"instance_id": id, "name": name, "color": color, "replica": strconv.Itoa(replica)}
}

// LogicalOf splits a row's id and name into its logical instance's id and
// name and the color ("" for a row that is not a color row).
func LogicalOf(rowID, rowName string) (id, name, color string) {
	name, color, ok := strings.Cut(rowName, ".")
	if !ok {
		return rowID, rowName, ""
	}
	return strings.TrimSuffix(rowID, "-"+color), name, color
}

// Label value bounds. A flow or model name comes from flows (user code),
// so the hub never lets one grow a series set without bound nor carry
// bytes that break a consumer: see Sanitize and the per-runtime caps in
// runtime.go.
const (
	// MaxLabelValueBytes is the longest label value kept; longer values
	// are cut at a rune boundary and end in "…".
	MaxLabelValueBytes = 64
	// OtherLabel is the value that stands for every flow or model past a
	// runtime's cap, and for an empty one.
	OtherLabel = "_other"
)

// Sanitize makes an outside string (a flow or model name) a safe label
// value: valid UTF-8, no control characters (replaced by a space, so a
// newline cannot start a new exposition line), surrounding space trimmed,
// at most MaxLabelValueBytes. Quotes and backslashes are kept: the
// exposition encoder escapes them. An empty result is OtherLabel.
func Sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > MaxLabelValueBytes {
		cut := MaxLabelValueBytes - len("…")
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if s == "" {
		return OtherLabel
	}
	return s
}

package testenv

import "testing"

// Chromium returns the path of the Chromium binary (Debian's package) for
// browser tests. It fails the test when Chromium is not available.
func Chromium(tb testing.TB) string {
	tb.Helper()
	return mustExecutable(tb, "chromium", keyChromium)
}

// Qemu returns the qemu-user-static emulator for goarch: "arm64" gives
// qemu-aarch64-static, "arm" gives qemu-arm-static. It fails the test for
// another goarch or when the emulator is not available.
func Qemu(tb testing.TB, goarch string) string {
	tb.Helper()
	switch goarch {
	case "arm64":
		return mustExecutable(tb, "qemu-aarch64-static", keyQemuAarch64)
	case "arm":
		return mustExecutable(tb, "qemu-arm-static", keyQemuArm)
	}
	tb.Fatalf("testenv: no qemu emulator for GOARCH %q (want arm64 or arm)", goarch)
	return ""
}

// Protoc returns the path of protoc (Debian's protobuf-compiler). It fails
// the test when protoc is not available.
func Protoc(tb testing.TB) string {
	tb.Helper()
	return mustExecutable(tb, "protoc", keyProtoc)
}

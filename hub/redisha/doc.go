// Package redisha holds the hub's tests against Redis behind Sentinel (a
// master, two replicas and three Sentinels from internal/testenv): a
// blue-green deployment and WebSocket consoles riding through the
// master's SIGKILL, and a hub started while no master is known. They live
// in their own package so they run in parallel with the hub's other tests.
package redisha

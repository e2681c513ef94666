// Package models is the hub's model marketplace: one Provider interface
// over the LLM APIs the flows use (Ollama, OpenAI and OpenAI-compatible
// servers, Anthropic), the gateway that serves them to the runtimes
// (routing by cost and SLA, fallback chains with per-attempt timeouts and
// an overall deadline, daily cost budgets, the AI-decision log and
// metrics of every routed call), live latency figures, and benchmarks.
//
// The registry, routes, budgets and benchmark results are catalog rows
// (hub/catalog), shared by every hub through Raft; provider API keys are
// sealed there (hub/secrets) and opened only to build a client. Live
// latency windows are this hub's own (see DESIGN.md). It does not serve
// HTTP: hub/api maps the OpenAI wire format onto Gateway and the registry
// routes onto the catalog.
package models

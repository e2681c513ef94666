// config.js: what the plugin needs to act, from the settings the hub
// writes (settings.redforgeRuntime) and the environment the hub gives the
// runtime. Without settings.redforgeRuntime the plugin stays inert, so a
// Node-RED that merely has the package installed (a test's own settings,
// an edge appliance) is not changed by it.
"use strict";

// fromSettings returns the plugin's configuration, or null when the hub
// did not turn the plugin on or left out what the bus needs.
function fromSettings(settings, env) {
	let rf;
	try {
		rf = settings && settings.redforgeRuntime;
	} catch (_) {
		rf = null;
	}
	if (!rf || rf.enabled !== true) {
		return null;
	}
	env = env || process.env;
	const cfg = {
		row: env.REDFORGE_ROW || "",
		rowID: env.REDFORGE_ROW_ID || "",
		busURL: env.REDFORGE_BUS_URL || "",
		busPassword: env.REDFORGE_BUS_PASSWORD || "",
		clientID: env.REDFORGE_CLIENT_ID || "",
		allocation: env.REDFORGE_ALLOCATION || "",
		hubURL: (env.REDFORGE_HUB_URL || "").replace(/\/+$/, ""),
		token: env.REDFORGE_TOKEN || "",
		editorHeader: rf.editorHeader || "x-redforge-editor",
	};
	if (!cfg.row || !cfg.rowID || !cfg.busURL || !cfg.clientID) {
		return null;
	}
	const u = safeURL(cfg.busURL);
	cfg.busHost = u ? u.hostname : "";
	cfg.busPort = u ? String(u.port || 1883) : "";
	return cfg;
}

function safeURL(s) {
	try {
		return new URL(s);
	} catch (_) {
		return null;
	}
}

// isHubBroker reports whether an mqtt-broker config node (as it is in the
// flows) is the hub bus the hub wired in: its host and port are the bus's.
function isHubBroker(cfg, node) {
	if (!node || node.type !== "mqtt-broker") {
		return false;
	}
	let host = String(node.broker || "");
	let port = String(node.port || "1883");
	const m = /^(?:mqtts?|tcp|wss?):\/\/([^/:]+)(?::(\d+))?/.exec(host);
	if (m) {
		host = m[1];
		port = m[2] || port;
	}
	return host === cfg.busHost && port === cfg.busPort;
}

module.exports = { fromSettings, isHubBroker };

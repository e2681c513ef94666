// @redforge/node-red-runtime: the RedForge runtime plugin. Node-RED loads
// plugins/runtime.js (the "node-red" section of package.json) from its own
// node_modules; the settings.js the hub writes requires this file for the
// parts Node-RED takes from settings (httpAdminMiddleware). Both get the
// same module instance, so they share state. See ../README.md ("The
// runtime plugin").
"use strict";

const state = {
	deploys: null, // set by the plugin once it runs
};

// adminMiddleware is settings.httpAdminMiddleware: the plugin's checks of
// admin requests, or nothing before the plugin runs (or when it is off).
function adminMiddleware(req, res, next) {
	if (state.deploys) {
		return state.deploys.middleware(req, res, next);
	}
	next();
}

module.exports = { state, adminMiddleware };

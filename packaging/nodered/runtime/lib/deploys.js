// deploys.js reports editor deploys to the hub. The hub's editor proxy
// (/editor/{name}/ on any hub) is the only way to the runtime's admin API
// besides the hub's own client, and it adds to every request a short-lived
// token it signed for the hub user (the header settings.adminAuth.tokenHeader
// names). When a deploy (POST /flows) carrying such a token has started
// the new flows, the plugin posts to its hub
//
//   POST $REDFORGE_HUB_URL/api/instances/{row id}/editor/deploys
//   Authorization: Bearer $REDFORGE_TOKEN
//   {"allocation","rev","type","editor_token","credentials":{node id:{…}}}
//
// and the hub checks both tokens, reads the flows from this runtime,
// records them as the instance's next flows version by that user (audited
// as a flows deployment) and writes them as the row's flows, so the other
// replicas run them too. The credentials (what the editor entered, as
// Node-RED decrypted them) travel so the hub can seal them and give them
// to the other replicas and to later green runtimes; they are never
// logged. The hub bus broker's credentials are the hub's and stay out.
//
// While the runtime is drained (the hub is replacing it) a deploy is
// refused with 423 and a message saying why, before Node-RED sees it.
"use strict";

const { isHubBroker } = require("./config");

const REFUSED =
	"This runtime is being replaced by a deployment in progress on the hub, so the deploy was refused and nothing changed. " +
	"Reload the editor once the deployment is over: it then opens the new runtime.";

class Deploys {
	constructor(RED, cfg, control, log) {
		this.RED = RED;
		this.cfg = cfg;
		this.control = control;
		this.log = log;
		this.pending = null;
	}

	// middleware is settings.httpAdminMiddleware: it refuses flow changes
	// while drained and notes the editor token of a deploy.
	middleware(req, res, next) {
		const changesFlows =
			(req.method === "POST" && req.path === "/flows") ||
			(/^\/flow(\/|$)/.test(req.path) && req.method !== "GET");
		if (!changesFlows) {
			return next();
		}
		if (this.control && this.control.draining) {
			res.status(423).type("text/plain").send(REFUSED);
			return;
		}
		const token = req.headers[this.cfg.editorHeader];
		if (req.method === "POST" && req.path === "/flows" && token) {
			const p = { token, type: String(req.headers["node-red-deployment-type"] || "full"), at: Date.now() };
			p.finished = new Promise((resolve) => res.on("finish", () => resolve(res.statusCode)));
			p.finished.then((status) => {
				if ((status < 200 || status > 299) && this.pending === p) {
					this.pending = null;
				}
			});
			this.pending = p;
		}
		next();
	}

	// started is called on flows:started with the running config.
	started(config) {
		const p = this.pending;
		if (!p || Date.now() - p.at > 60000) {
			return;
		}
		this.pending = null;
		const flows = (config && config.flows) || [];
		p.finished.then((status) => {
			if (status >= 200 && status < 300) {
				this.report(p, config.rev, flows).catch((err) => {
					this.log.warn("[redforge] could not report the editor deploy to the hub: " + err.message);
				});
			}
		});
	}

	credentials(flows) {
		const out = {};
		for (const n of flows) {
			if (!n || !n.id || isHubBroker(this.cfg, n)) {
				continue;
			}
			let c;
			try {
				c = this.RED.nodes.getCredentials(n.id);
			} catch (_) {
				c = null;
			}
			if (c && typeof c === "object" && Object.keys(c).length) {
				out[n.id] = c;
			}
		}
		return out;
	}

	async report(p, rev, flows) {
		if (!this.cfg.hubURL || !this.cfg.token) {
			return;
		}
		const body = JSON.stringify({
			allocation: this.cfg.allocation,
			rev: rev || "",
			type: p.type,
			editor_token: p.token,
			credentials: this.credentials(flows),
		});
		const url = this.cfg.hubURL + "/api/instances/" + encodeURIComponent(this.cfg.rowID) + "/editor/deploys";
		let last;
		for (let attempt = 0; attempt < 5; attempt++) {
			if (attempt > 0) {
				await new Promise((r) => setTimeout(r, 500 * attempt));
			}
			let res;
			try {
				res = await fetch(url, {
					method: "POST",
					headers: { "Content-Type": "application/json", Authorization: "Bearer " + this.cfg.token },
					body,
					signal: AbortSignal.timeout(30000),
				});
			} catch (err) {
				last = err; // the hub did not answer: retry
				continue;
			}
			if (res.ok) {
				this.log.info("[redforge] editor deploy reported to the hub");
				return;
			}
			last = new Error("hub answered " + res.status + ": " + (await res.text()).slice(0, 300));
			if (res.status < 500) {
				break; // refused: retrying will not help
			}
		}
		throw last;
	}
}

module.exports = { Deploys, REFUSED };

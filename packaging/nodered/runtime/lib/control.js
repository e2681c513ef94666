// control.js speaks the hub's control contract for the runtime (see
// packaging/nodered/README.md): it subscribes to {row}/control on the hub
// bus with the row's own credentials and answers on {row}/control/ack.
//
//   ping    ack at once.
//   drain   hold the runtime's own input (holds.js) and ack once nothing
//           is in flight (inflight.js): at once when idle, else when the
//           count reaches zero.
//   active  resume; ack.
//
// A flow that implements the contract itself (an mqtt in on the hub bus
// subscribed to {row}/control) keeps precedence: the plugin then neither
// answers nor holds anything, and the flow's own acks are the runtime's.
"use strict";

const path = require("path");
const { isHubBroker } = require("./config");
const { nodeREDPaths } = require("./inflight");

class Control {
	constructor(RED, cfg, inflight, holds, log) {
		this.RED = RED;
		this.cfg = cfg;
		this.inflight = inflight;
		this.holds = holds;
		this.log = log;
		this.client = null;
		this.flows = [];
		this.ownContract = false;
		this.draining = false;
		this.ackPending = false;
		inflight.onChange((n) => {
			if (this.ackPending && n === 0) {
				this.ackPending = false;
				this.ack("drain");
			}
		});
	}

	get controlTopic() {
		return this.cfg.row + "/control";
	}

	// setFlows takes the running flows' configs after a deploy.
	setFlows(flows) {
		this.flows = flows || [];
		const hub = new Set(this.flows.filter((n) => isHubBroker(this.cfg, n)).map((n) => n.id));
		const own = this.flows.some((n) => n && n.type === "mqtt in" && n.d !== true && hub.has(n.broker) && n.topic === this.controlTopic);
		if (own !== this.ownContract) {
			this.log.info(own ? "[redforge] the flows implement the control contract; the plugin stands back" : "[redforge] the plugin answers the control contract");
		}
		this.ownContract = own;
		if (own && this.holds.holding) {
			this.holds.release();
		}
	}

	start() {
		let mqtt;
		try {
			mqtt = require(require.resolve("mqtt", { paths: nodeREDPaths().concat([path.join(__dirname, "..")]) }));
		} catch (err) {
			this.log.warn("[redforge] no mqtt client in Node-RED's node_modules: the control contract is off (" + err.message + ")");
			return;
		}
		this.client = mqtt.connect(this.cfg.busURL, {
			clientId: this.cfg.clientID + "-rt",
			username: this.cfg.rowID,
			password: this.cfg.busPassword,
			clean: true,
			reconnectPeriod: 1000,
			connectTimeout: 10000,
			protocolVersion: 4,
		});
		this.client.on("connect", () => {
			this.client.subscribe(this.controlTopic, { qos: 1 }, (err) => {
				if (err) {
					this.log.warn("[redforge] subscribe " + this.controlTopic + ": " + err.message);
				}
			});
		});
		this.client.on("error", (err) => {
			// The message never holds the password; the URL has none.
			this.log.warn("[redforge] hub bus: " + (err && err.message ? err.message : err));
		});
		this.client.on("message", (topic, payload) => {
			if (topic === this.controlTopic) {
				this.handle(payload);
			}
		});
	}

	stop() {
		if (this.client) {
			this.client.end(true);
			this.client = null;
		}
	}

	handle(payload) {
		if (this.ownContract) {
			return;
		}
		let mode;
		try {
			mode = JSON.parse(payload.toString()).mode;
		} catch (_) {
			return;
		}
		switch (mode) {
			case "ping":
				this.ack("ping");
				break;
			case "drain":
				this.draining = true;
				this.holds.hold(this.flows);
				if (this.inflight.count === 0) {
					this.ackPending = false;
					this.ack("drain");
				} else {
					this.ackPending = true;
					this.log.info("[redforge] draining: waiting for " + this.inflight.count + " message(s) in flight");
				}
				break;
			case "active":
				this.draining = false;
				this.ackPending = false;
				this.holds.release();
				this.ack("active");
				break;
		}
	}

	ack(mode) {
		if (!this.client) {
			return;
		}
		const body = JSON.stringify({ mode, inflight: this.inflight.count, replica: this.cfg.clientID });
		this.client.publish(this.cfg.row + "/control/ack", body, { qos: 1 });
	}
}

module.exports = { Control };

// holds.js stops a draining runtime from taking input of its own, the
// input the hub cannot hold for it:
//
//   inject nodes   while held, a timer's (or the editor button's) message
//                  is dropped at the inject node, before it starts any
//                  work: the green runtime's own timers fire instead. An
//                  inject "once at start" has fired already.
//   mqtt in nodes on brokers other than the hub bus
//                  are unsubscribed from their broker while held, and
//                  subscribed again on "active" (the broker connection
//                  stays up, so an mqtt out on the same broker still
//                  publishes what in-flight work sends). What the broker
//                  delivers meanwhile follows its own rules: a shared
//                  subscription ($share/...) hands it to the green
//                  runtime's subscription, a persistent session (fixed
//                  client id, clean session off, QoS 1 or 2) keeps it for
//                  the reconnect; otherwise a broker drops messages that
//                  have no subscriber.
//
// Not held: http in (the hub's /i/{name}/ proxy keeps routing to the old
// runtime until the switch, then to the new one), mqtt in on the hub bus
// (the hub stops relaying input before it sends drain and holds the
// rest), and any other source node (tcp, websocket, watch, …).
"use strict";

const { isHubBroker } = require("./config");

class Holds {
	constructor(RED, cfg, log) {
		this.RED = RED;
		this.cfg = cfg;
		this.log = log;
		this.holding = false;
		this.saved = []; // {broker, sub}
	}

	// drops reports whether a message delivered to node must be dropped
	// (an inject firing while held).
	drops(node) {
		return this.holding && !!node && node.type === "inject";
	}

	// hold starts holding, given the running flows' node configs.
	hold(flows) {
		if (this.holding) {
			return;
		}
		this.holding = true;
		const brokers = new Map();
		for (const n of flows || []) {
			if (n && n.type === "mqtt-broker") {
				brokers.set(n.id, n);
			}
		}
		for (const n of flows || []) {
			if (!n || n.type !== "mqtt in" || n.d === true) {
				continue;
			}
			const bcfg = brokers.get(n.broker);
			if (!bcfg || isHubBroker(this.cfg, bcfg)) {
				continue;
			}
			const broker = this.RED.nodes.getNode(n.broker);
			if (!broker || typeof broker.unsubscribe !== "function" || !broker.subscriptions) {
				continue;
			}
			for (const topic of Object.keys(broker.subscriptions)) {
				const sub = broker.subscriptions[topic] && broker.subscriptions[topic][n.id];
				if (!sub) {
					continue;
				}
				try {
					broker.unsubscribe(topic, n.id, true);
					this.saved.push({ broker, sub });
				} catch (err) {
					this.log.warn("[redforge] could not pause mqtt in " + n.id + ": " + err.message);
				}
			}
		}
		if (this.saved.length) {
			this.log.info("[redforge] draining: paused " + this.saved.length + " outside MQTT subscription(s) and inject timers");
		}
	}

	// release resumes what hold paused.
	release() {
		this.holding = false;
		const saved = this.saved;
		this.saved = [];
		for (const { broker, sub } of saved) {
			try {
				broker.subscribe(sub);
			} catch (err) {
				this.log.warn("[redforge] could not resume an mqtt in subscription: " + err.message);
			}
		}
	}

	// reset forgets what a deploy replaced (its broker nodes are new).
	reset() {
		this.saved = [];
	}
}

module.exports = { Holds };

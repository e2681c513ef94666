// inflight.js counts the messages a runtime is working on, for any flow,
// through Node-RED's messaging hooks (RED.hooks):
//
//   preDeliver   a message is routed to a node: +1 (it is on its way);
//   onReceive    the node is about to take it: the count moves from "on
//                its way" to "at the node" (a message no node sent, such
//                as an inject timer's, counts +1 here);
//   onComplete   the node called done() (or done(err)): -1;
//   postReceive  the node's input handler returned, for a node that takes
//                no done callback (a two-argument handler, which never
//                completes): -1 there;
//   node.error(err, msg)  for a message at that node (a handler that
//                threw, or reported the error without done): -1.
//
// Each (message, node) pair is counted once, so a done() called twice or
// a hook seen out of order cannot drive the count below zero. A node that
// keeps working after its handler returned without taking done (an old
// two-argument node doing asynchronous work) is not seen: such work is
// bounded only by the hub's drain timeout. Nodes stopped by a deploy drop
// what they held.
"use strict";

class InFlight {
	constructor() {
		this.count = 0;
		this.onWay = new WeakMap(); // msg -> deliveries routed, not yet received
		this.at = new WeakMap(); // msg -> Map(node id -> count)
		this.byNode = new Map(); // node id -> count
		this.listeners = [];
	}

	// routed: a message was routed to a node (preDeliver).
	routed(msg) {
		if (!msg || typeof msg !== "object") {
			return;
		}
		this.onWay.set(msg, (this.onWay.get(msg) || 0) + 1);
		this.count++;
	}

	// received: node takes msg (onReceive).
	received(msg, nodeID) {
		if (!msg || typeof msg !== "object" || !nodeID) {
			return;
		}
		const way = this.onWay.get(msg) || 0;
		if (way > 0) {
			this.onWay.set(msg, way - 1);
			this.count--; // moves to "at the node" below
		}
		let m = this.at.get(msg);
		if (!m) {
			m = new Map();
			this.at.set(msg, m);
		}
		m.set(nodeID, (m.get(nodeID) || 0) + 1);
		this.byNode.set(nodeID, (this.byNode.get(nodeID) || 0) + 1);
		this.count++;
	}

	// done: node finished with msg (onComplete, postReceive without done,
	// node.error). It returns whether the pair was counted.
	done(msg, nodeID) {
		const m = msg && typeof msg === "object" ? this.at.get(msg) : null;
		const n = m ? m.get(nodeID) || 0 : 0;
		if (n <= 0) {
			return false;
		}
		if (n === 1) {
			m.delete(nodeID);
		} else {
			m.set(nodeID, n - 1);
		}
		const b = (this.byNode.get(nodeID) || 0) - 1;
		if (b <= 0) {
			this.byNode.delete(nodeID);
		} else {
			this.byNode.set(nodeID, b);
		}
		this.count = Math.max(0, this.count - 1);
		this.changed();
		return true;
	}

	// undeliverable: a routed message will not reach its node.
	undeliverable(msg) {
		const way = msg && typeof msg === "object" ? this.onWay.get(msg) || 0 : 0;
		if (way > 0) {
			this.onWay.set(msg, way - 1);
			this.count = Math.max(0, this.count - 1);
			this.changed();
		}
	}

	// stopped drops what the stopped nodes held (all of them for a full
	// deploy).
	stopped(nodeIDs) {
		if (!nodeIDs) {
			this.count = 0;
			this.byNode.clear();
			this.onWay = new WeakMap();
			this.at = new WeakMap();
		} else {
			for (const id of nodeIDs) {
				const n = this.byNode.get(id) || 0;
				this.byNode.delete(id);
				this.count = Math.max(0, this.count - n);
			}
		}
		this.changed();
	}

	onChange(f) {
		this.listeners.push(f);
	}

	changed() {
		for (const f of this.listeners) {
			try {
				f(this.count);
			} catch (_) {
				// a listener's failure is its own
			}
		}
	}
}

// takesDone reports whether a node's input handlers take a done callback
// (Node-RED then calls onComplete when the last of them calls it).
function takesDone(node) {
	return !!node && node._expectedDoneCount > 0;
}

// install adds the counting hooks (labelled .redforge) and wraps
// node.error; it returns a function that removes them.
function install(RED, inflight, opts) {
	const hooks = RED.hooks;
	const drop = (opts && opts.drop) || (() => false);
	hooks.add("preDeliver.redforge", (ev) => {
		inflight.routed(ev.msg);
	});
	hooks.add("onReceive.redforge", (ev) => {
		const node = ev.destination && ev.destination.node;
		if (drop(node, ev.msg)) {
			inflight.undeliverable(ev.msg);
			return false; // Node-RED then drops the message
		}
		inflight.received(ev.msg, ev.destination && ev.destination.id);
	});
	hooks.add("postReceive.redforge", (ev) => {
		const node = ev.destination && ev.destination.node;
		if (!takesDone(node)) {
			inflight.done(ev.msg, ev.destination.id);
		}
	});
	hooks.add("onComplete.redforge", (ev) => {
		inflight.done(ev.msg, ev.node && ev.node.id);
	});
	const restoreError = wrapNodeError(RED, inflight);
	return () => {
		for (const h of ["preDeliver", "onReceive", "postReceive", "onComplete"]) {
			hooks.remove(h + ".redforge");
		}
		restoreError();
	};
}

// wrapNodeError makes node.error(err, msg) end msg's work at that node:
// Node-RED calls it when an input handler throws, and nodes that report
// an error without done() call it themselves.
function wrapNodeError(RED, inflight) {
	let proto = null;
	try {
		const Node = require(require.resolve("@node-red/runtime/lib/nodes/Node", { paths: nodeREDPaths() }));
		proto = Node && Node.prototype;
	} catch (_) {
		proto = null;
	}
	if (!proto || typeof proto.error !== "function" || proto.error.__redforge) {
		return () => {};
	}
	const original = proto.error;
	const wrapped = function (logMessage, msg) {
		const r = original.apply(this, arguments);
		if (msg && typeof msg === "object") {
			inflight.done(msg, this.id);
		}
		return r;
	};
	wrapped.__redforge = true;
	proto.error = wrapped;
	return () => {
		if (proto.error === wrapped) {
			proto.error = original;
		}
	};
}

// nodeREDPaths are where Node-RED's own packages resolve from.
function nodeREDPaths() {
	const path = require("path");
	const out = [];
	if (require.main && require.main.filename) {
		out.push(path.dirname(require.main.filename));
	}
	out.push(__dirname);
	return out;
}

module.exports = { InFlight, install, takesDone, nodeREDPaths };

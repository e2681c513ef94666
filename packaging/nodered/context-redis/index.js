// @redforge/node-red-context-redis: a Node-RED context store (the
// contextStorage plugin API of Node-RED 4) kept in Redis, so that the blue
// and green runtimes of one RedForge logical instance share their context
// across a blue-green deployment. See ../README.md ("Context in Redis").
//
// Data model: one Redis hash per context scope, named prefix + scope
// ("global", a flow id, or "nodeId:flowId"); each top-level context key is
// a field whose value is the JSON of the value. A nested key ("a.b[0]")
// reads or rewrites the top-level value it lives in.
//
// The store is asynchronous: flows must pass a callback
// (flow.get("k", "redis", (err, v) => ...)); a get or set without one
// throws, as Node-RED expects of a store without synchronous access.
"use strict";

const { createClient, createSentinel } = require("redis");

// sentinelOptions turns the hub's redis-sentinel:// URL
// (redis-sentinel://[[user]:password@]host:port,host:port/master/db
// [?sentinel_password=…&sentinel_username=…]) into node-redis's
// createSentinel options, so the store follows the master across a
// Sentinel failover as the hub does. It returns null for any other URL.
function sentinelOptions(url) {
	const m = /^redis-sentinel:\/\/(?:([^@]*)@)?([^/?]+)\/([^/?]+)(?:\/(\d*))?\/?(?:\?(.*))?$/i.exec(url);
	if (!m) {
		return null;
	}
	const node = {};
	if (m[1] !== undefined) {
		const i = m[1].indexOf(":");
		const user = decodeURIComponent(i < 0 ? m[1] : m[1].slice(0, i));
		if (user) {
			node.username = user;
		}
		if (i >= 0) {
			node.password = decodeURIComponent(m[1].slice(i + 1));
		}
	}
	if (m[4]) {
		node.database = Number(m[4]);
	}
	const roots = m[2].split(",").map((hp) => {
		const i = hp.lastIndexOf(":");
		return { host: hp.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(hp.slice(i + 1)) };
	});
	const sentinel = {};
	const q = new URLSearchParams(m[5] || "");
	if (q.get("sentinel_password")) {
		sentinel.password = q.get("sentinel_password");
	}
	if (q.get("sentinel_username")) {
		sentinel.username = q.get("sentinel_username");
	}
	return {
		name: decodeURIComponent(m[3]),
		sentinelRootNodes: roots,
		nodeClientOptions: node,
		sentinelClientOptions: sentinel,
	};
}

// Node-RED's own property-expression helpers ("a.b[0]"), as its memory
// store uses them.
const util = require("@node-red/util").util;

function parts(key) {
	return util.normalisePropertyExpression(key);
}

function decode(s) {
	if (s === null || s === undefined) {
		return undefined;
	}
	try {
		return JSON.parse(s);
	} catch (_) {
		return undefined;
	}
}

class RedisContext {
	// config: { url: "redis://host:port/db", prefix: "redforge:ctx:{logical}:" }
	constructor(config) {
		this.url = (config && config.url) || "redis://127.0.0.1:6379/0";
		this.prefix = (config && config.prefix) || "nodered:";
		this.client = null;
	}

	open() {
		const so = sentinelOptions(this.url);
		this.client = so ? createSentinel(so) : createClient({ url: this.url });
		// Errors (a lost connection) are retried by the client; log them
		// without the URL, which may hold a password.
		this.client.on("error", (err) => {
			console.warn("[redforge-context-redis] " + (err && err.message ? err.message : err));
		});
		return this.client.connect().then(() => undefined);
	}

	close() {
		if (!this.client) {
			return Promise.resolve();
		}
		const c = this.client;
		this.client = null;
		return c.close ? c.close() : c.quit();
	}

	_hash(scope) {
		return this.prefix + scope;
	}

	get(scope, key, callback) {
		if (typeof callback !== "function") {
			throw new Error("the redis context store is asynchronous: pass a callback to get");
		}
		const keys = Array.isArray(key) ? key : [key];
		let paths;
		try {
			paths = keys.map(parts);
		} catch (err) {
			callback(err);
			return;
		}
		const roots = paths.map((p) => String(p[0]));
		this.client
			.hmGet(this._hash(scope), roots)
			.then((raw) => {
				const values = keys.map((k, i) => {
					const root = decode(raw[i]);
					if (paths[i].length === 1 || root === undefined) {
						return root;
					}
					return util.getObjectProperty({ [roots[i]]: root }, k);
				});
				callback(null, ...values);
			})
			.catch((err) => callback(err));
	}

	set(scope, key, value, callback) {
		if (typeof callback !== "function") {
			throw new Error("the redis context store is asynchronous: pass a callback to set");
		}
		const keys = Array.isArray(key) ? key : [key];
		const values = Array.isArray(key) ? (Array.isArray(value) ? value : [value]) : [value];
		this._setAll(scope, keys, values)
			.then(() => callback(null))
			.catch((err) => callback(err));
	}

	async _setAll(scope, keys, values) {
		const hash = this._hash(scope);
		for (let i = 0; i < keys.length; i++) {
			const p = parts(keys[i]);
			const root = String(p[0]);
			let v = values[i];
			if (p.length > 1) {
				const wrapper = { [root]: decode(await this.client.hGet(hash, root)) };
				util.setObjectProperty(wrapper, keys[i], v, true);
				v = wrapper[root];
			}
			if (v === undefined) {
				await this.client.hDel(hash, root);
			} else {
				await this.client.hSet(hash, root, JSON.stringify(v));
			}
		}
	}

	keys(scope, callback) {
		if (typeof callback !== "function") {
			throw new Error("the redis context store is asynchronous: pass a callback to keys");
		}
		this.client
			.hKeys(this._hash(scope))
			.then((ks) => callback(null, ks))
			.catch((err) => callback(err));
	}

	delete(scope) {
		return this.client.del(this._hash(scope)).then(() => undefined);
	}

	// clean keeps everything: blue and green share the store while they
	// run different flows, so a node missing from one runtime's flows may
	// still be live in the other (or again after a rollback). Deleting the
	// instance's keys (prefix*) resets its context.
	clean(_activeNodes) {
		return Promise.resolve();
	}
}

module.exports = function (config) {
	return new RedisContext(config);
};
module.exports.sentinelOptions = sentinelOptions;

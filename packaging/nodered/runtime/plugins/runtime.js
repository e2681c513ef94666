// The RedForge runtime plugin (see ../README.md and
// packaging/nodered/README.md, "The runtime plugin"). It is inert unless
// the hub's settings.js turned it on (settings.redforgeRuntime).
"use strict";

const { fromSettings } = require("../lib/config");
const { InFlight, install } = require("../lib/inflight");
const { Holds } = require("../lib/holds");
const { Control } = require("../lib/control");
const { Deploys } = require("../lib/deploys");
const shared = require("../index").state;

module.exports = function (RED) {
	RED.plugins.registerPlugin("redforge-runtime", { type: "redforge-runtime" });
	const cfg = fromSettings(RED.settings);
	if (!cfg) {
		return;
	}
	const log = RED.log;
	const inflight = new InFlight();
	const holds = new Holds(RED, cfg, log);
	install(RED, inflight, { drop: (node) => holds.drops(node) });
	const control = new Control(RED, cfg, inflight, holds, log);
	const deploys = new Deploys(RED, cfg, control, log);
	shared.deploys = deploys;
	shared.inflight = inflight;
	shared.control = control;

	RED.events.on("flows:started", (ev) => {
		const flows = (ev && ev.config && ev.config.flows) || [];
		const diff = ev && ev.diff;
		if (!diff || ev.type === "full") {
			inflight.stopped(null);
			holds.reset();
		} else {
			inflight.stopped([].concat(diff.changed || [], diff.removed || [], diff.rewired || []));
		}
		control.setFlows(flows);
		if (control.draining && !control.ownContract) {
			holds.hold(flows); // a deploy while draining: hold the new nodes too
		}
		deploys.started(ev && ev.config);
	});
	control.start();
	log.info("[redforge] runtime plugin on: control contract on " + cfg.row + "/control");
};

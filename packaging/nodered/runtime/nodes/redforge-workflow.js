// redforge-workflow times a workflow: a "start" node marks when a message
// begins one, an "end" (or "error") node when it finishes. They are paired
// by a key read from the message: msg._redforge.workflow by default (the
// start node sets it when absent), or a property the flow chooses, such
// as payload.requestId. Durations, errors (error nodes and workflows past
// their timeout) and workflows in flight are counted per flow and served
// to the hub (lib/agent-metrics.js).
'use strict';

module.exports = function (RED) {
  const metrics = require('./lib/agent-metrics').init(RED);

  function WorkflowNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const action = ['start', 'end', 'error'].includes(config.action) ? config.action : 'start';
    const keyProp = (config.key || '').trim() || '_redforge.workflow';
    const timeout = Number(config.timeout) > 0 ? Number(config.timeout) : 300;
    const flowName = (config.flow || '').trim() || RED.util.getSetting(node, 'NR_FLOW_NAME') || node.z || 'flow';
    const errorOnMsgError = !!config.errorOnMsgError;

    // keyOf reads the key; a missing parent object is no key.
    function keyOf(msg) {
      try {
        return RED.util.getMessageProperty(msg, keyProp);
      } catch (_) {
        return undefined;
      }
    }

    node.on('input', function (msg, send, done) {
      try {
        let key = keyOf(msg);
        if (action === 'start') {
          if (key === undefined || key === null || key === '') {
            key = RED.util.generateId();
            RED.util.setMessageProperty(msg, keyProp, key, true);
          }
          metrics.start(String(key), flowName, timeout);
        } else if (key === undefined || key === null || key === '') {
          node.status({ fill: 'yellow', shape: 'ring', text: 'no workflow key at msg.' + keyProp });
        } else {
          const failed = action === 'error' || (errorOnMsgError && msg.error !== undefined);
          const secs = metrics.finish(String(key), failed ? 'error' : 'ok');
          if (secs === undefined) {
            node.status({ fill: 'yellow', shape: 'ring', text: 'workflow not started (or timed out)' });
          } else {
            node.status({ fill: failed ? 'red' : 'green', shape: 'dot', text: secs.toFixed(3) + ' s' });
          }
        }
        send(msg);
        done();
      } catch (err) {
        done(err);
      }
    });
  }

  RED.nodes.registerType('redforge-workflow', WorkflowNode);
};

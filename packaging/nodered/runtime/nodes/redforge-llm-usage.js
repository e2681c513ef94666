// redforge-llm-usage records the tokens of an LLM call by model, with an
// estimated cost from the hub's price table (GET /api/metrics/prices, read
// with the runtime's REDFORGE_TOKEN). It reads the usage the common APIs
// return: OpenAI (usage.prompt_tokens, usage.completion_tokens), Anthropic
// (usage.input_tokens, usage.output_tokens) and Ollama (prompt_eval_count,
// eval_count), in msg.usage or msg.payload; the model from the node's
// setting, else msg.model, msg.payload.model. The message passes through
// with msg.llm = {model, prompt_tokens, completion_tokens, cost_usd}.
'use strict';

module.exports = function (RED) {
  const metrics = require('./lib/agent-metrics').init(RED);

  function pick(...vals) {
    for (const v of vals) {
      const n = Number(v);
      if (v !== undefined && v !== null && Number.isFinite(n)) return n;
    }
    return 0;
  }

  function LLMUsageNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const fixedModel = (config.model || '').trim();
    let total = 0;

    node.on('input', function (msg, send, done) {
      try {
        const payload = msg.payload && typeof msg.payload === 'object' ? msg.payload : {};
        const usage = (msg.usage && typeof msg.usage === 'object' && msg.usage) ||
          (payload.usage && typeof payload.usage === 'object' && payload.usage) || {};
        const model = fixedModel || msg.model || payload.model || usage.model || 'unknown';
        const prompt = pick(usage.prompt_tokens, usage.input_tokens, payload.prompt_eval_count);
        const completion = pick(usage.completion_tokens, usage.output_tokens, payload.eval_count);
        const cost = metrics.llm(String(model), prompt, completion);
        total += prompt + completion;
        msg.llm = { model: String(model), prompt_tokens: prompt, completion_tokens: completion, cost_usd: cost };
        node.status({ fill: 'blue', shape: 'dot', text: total + ' tokens' });
        send(msg);
        done();
      } catch (err) {
        done(err);
      }
    });
  }

  RED.nodes.registerType('redforge-llm-usage', LLMUsageNode);
};

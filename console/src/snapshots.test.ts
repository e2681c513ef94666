import { describe, expect, it } from 'vitest';
import { diffLines } from './snapshots';

describe('diffLines', () => {
  it('lists nodes by name and type, then settings and packages', () => {
    const lines = diffLines({
      from: 's1',
      to: 'current',
      flows: {
        added: [{ id: 'a', type: 'debug', name: 'watch' }],
        changed: [{ id: 'b', type: 'change', name: 'reply', fields: ['rules', 'x'] }],
        removed: [{ id: 'c', type: 'function' }],
      },
      settings: [{ setting: 'env.MODE', from: 'a', to: '' }],
      nodes: { added: ['node-red-contrib-x@1.0.0'], removed: [], changed: ['y: 1.0.0 → 2.0.0'] },
      summary: '',
    });
    expect(lines).toEqual([
      { mark: '+', text: 'watch · debug' },
      { mark: '~', text: 'reply · change (rules, x)' },
      { mark: '-', text: '(unnamed) · function' },
      { mark: '~', text: 'setting env.MODE: a → —' },
      { mark: '+', text: 'package node-red-contrib-x@1.0.0' },
      { mark: '~', text: 'package y: 1.0.0 → 2.0.0' },
    ]);
  });
});

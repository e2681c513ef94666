// The pager of the audit and AI decision lists: newer and older pages of
// pageSize records, newest first.
import type { ComponentChildren } from 'preact';

export const pageSize = 50;

/** Pager moves offset by pageSize; there is an older page while this one is full. */
export function Pager({ offset, shown, setOffset, children }: { offset: number; shown: number; setOffset: (n: number) => void; children?: ComponentChildren }) {
  return (
    <div class="pager">
      <button class="btn btn-small" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - pageSize))}>
        ← Newer
      </button>
      {children}
      <button class="btn btn-small" disabled={shown < pageSize} onClick={() => setOffset(offset + pageSize)}>
        Older →
      </button>
    </div>
  );
}

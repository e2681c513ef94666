// Shared pieces: links, badges, bars, states, toasts and the confirmation dialog.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { onLinkClick } from '../router';
import { health, healthLabel } from '../fleet';
import { errorMessage } from '../api';
import type { LiveState } from '../ws';

export function Link(props: { href: string; class?: string; children: ComponentChildren; title?: string; 'data-testid'?: string }) {
  return (
    <a {...props} onClick={onLinkClick as any}>
      {props.children}
    </a>
  );
}

export function HealthBadge({ status }: { status?: string }) {
  return (
    <span class={'badge badge-' + health(status)} data-testid="health" data-status={status || ''}>
      {healthLabel(status)}
    </span>
  );
}

const statusColour: Record<string, string> = {
  succeeded: 'green',
  running: 'yellow',
  pending: 'grey',
  failed: 'red',
  rolled_back: 'red',
  online: 'green',
  offline: 'red',
  decommissioned: 'grey',
  active: 'green',
  disabled: 'grey',
  revoked: 'red',
  up: 'green',
  self: 'green',
  suspect: 'yellow',
  down: 'red',
};

export function StatusBadge({ status }: { status?: string }) {
  return <span class={'badge badge-' + (statusColour[status || ''] || 'grey')}>{(status || 'unknown').replace(/_/g, ' ')}</span>;
}

/** LiveBadge shows the state of a page's /api/ws connection. */
export function LiveBadge({ state }: { state: LiveState }) {
  const text = state === 'live' ? 'Live' : state === 'connecting' ? 'Connecting…' : 'Reconnecting…';
  return (
    <span class={'live live-' + state} data-testid="live" title="Updates from /api/ws">
      <span class="live-dot" aria-hidden="true" /> {text}
    </span>
  );
}

export function Bar({ label, fraction, text }: { label: string; fraction?: number; text: string }) {
  const pct = fraction == null ? 0 : Math.round(fraction * 100);
  const level = pct >= 90 ? 'red' : pct >= 70 ? 'yellow' : 'green';
  return (
    <div class="bar" title={`${label}: ${text}`}>
      <span class="bar-label">{label}</span>
      <span class="bar-track" role="meter" aria-label={label} aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
        <span class={'bar-fill bar-' + level} style={{ width: pct + '%' }} />
      </span>
      <span class="bar-text">{text}</span>
    </div>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <div class="state state-loading" role="status">
      <span class="spinner" aria-hidden="true" /> {what}…
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="state state-empty">{children}</div>;
}

export function ErrorBox({ error, retry }: { error: string; retry?: () => void }) {
  return (
    <div class="state state-error" role="alert">
      <strong>Error:</strong> {error}
      {retry && (
        <button class="btn btn-small" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

// Toasts: success and failure notices, shown for 6 s.
type Toast = { id: number; kind: 'ok' | 'error'; text: string };
let toasts: Toast[] = [];
let nextID = 1;
const toastListeners = new Set<() => void>();

export function toast(kind: 'ok' | 'error', text: string) {
  const t = { id: nextID++, kind, text };
  toasts = [...toasts, t].slice(-4);
  toastListeners.forEach((f) => f());
  setTimeout(() => {
    toasts = toasts.filter((x) => x.id !== t.id);
    toastListeners.forEach((f) => f());
  }, 6000);
}

export function Toasts() {
  const [, set] = useState(0);
  useEffect(() => {
    const f = () => set((n) => n + 1);
    toastListeners.add(f);
    return () => void toastListeners.delete(f);
  }, []);
  return (
    <div class="toasts" aria-live="polite">
      {toasts.map((t) => (
        <div key={t.id} class={'toast toast-' + t.kind} role={t.kind === 'error' ? 'alert' : 'status'}>
          {t.text}
        </div>
      ))}
    </div>
  );
}

/** Confirm is a modal that asks before a consequential action. confirmText, when set, must be typed. */
export function Confirm(props: {
  title: string;
  children: ComponentChildren;
  action: string;
  danger?: boolean;
  confirmText?: string;
  onConfirm: () => Promise<void> | void;
  onClose: () => void;
}) {
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current?.querySelector<HTMLElement>('input, button.btn-primary, button.btn-danger');
    el?.focus();
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && props.onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  const ok = !props.confirmText || typed === props.confirmText;
  const go = async () => {
    setBusy(true);
    try {
      await props.onConfirm();
      props.onClose();
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="modal-backdrop" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <div class="modal" role="dialog" aria-modal="true" aria-labelledby="modal-title" ref={ref}>
        <h2 id="modal-title">{props.title}</h2>
        <div class="modal-body">{props.children}</div>
        {props.confirmText && (
          <label class="field">
            Type <code>{props.confirmText}</code> to confirm
            <input value={typed} onInput={(e) => setTyped((e.target as HTMLInputElement).value)} data-testid="confirm-text" />
          </label>
        )}
        <div class="modal-actions">
          <button class="btn" onClick={props.onClose}>
            Cancel
          </button>
          <button class={props.danger ? 'btn btn-danger' : 'btn btn-primary'} disabled={!ok || busy} onClick={go} data-testid="confirm">
            {busy ? 'Working…' : props.action}
          </button>
        </div>
      </div>
    </div>
  );
}

/** useAsync loads data with loading and error states; reload re-runs it. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(ac.signal).then(
      (data) => !ac.signal.aborted && setState({ data, loading: false }),
      (e) => !ac.signal.aborted && setState({ error: errorMessage(e), loading: false }),
    );
    return () => ac.abort();
  }, [...deps, n]);
  return { ...state, reload: () => setN((x) => x + 1), set: (data: T) => setState({ data, loading: false }) };
}

// Live events from /api/ws, reconnecting with backoff. A reconnect calls
// onOpen again so pages can reload what they may have missed.
import { useEffect, useRef, useState } from 'preact/hooks';
import { freshToken } from './api';
import type { HubEvent } from './types';

export type LiveState = 'connecting' | 'live' | 'offline';

/** backoff is the wait before reconnect attempt n (0-based): 0.5 s doubling to 10 s. */
export function backoff(n: number): number {
  return Math.min(10_000, 500 * 2 ** n);
}

/** wsURL is the event stream's address for this page. */
export function wsURL(loc: { protocol: string; host: string }, token: string, types: string[]): string {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ access_token: token });
  if (types.length) q.set('types', types.join(','));
  return `${proto}//${loc.host}/api/ws?${q}`;
}

/** useEvents streams events of types to onEvent while mounted. */
export function useEvents(types: string[], onEvent: (e: HubEvent) => void, onOpen?: () => void): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const cb = useRef({ onEvent, onOpen });
  cb.current = { onEvent, onOpen };
  const key = types.join(',');
  useEffect(() => {
    let ws: WebSocket | null = null;
    let closed = false;
    let attempt = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const connect = async () => {
      const token = await freshToken();
      if (closed || !token) return;
      setState('connecting');
      ws = new WebSocket(wsURL(location, token, types));
      ws.onopen = () => {
        attempt = 0;
        setState('live');
        cb.current.onOpen?.();
      };
      ws.onmessage = (m) => {
        try {
          cb.current.onEvent(JSON.parse(m.data));
        } catch {
          /* not an event */
        }
      };
      ws.onclose = () => {
        if (closed) return;
        setState('offline');
        timer = setTimeout(connect, backoff(attempt++));
      };
      ws.onerror = () => ws?.close();
    };
    connect();
    return () => {
      closed = true;
      clearTimeout(timer);
      if (ws) {
        ws.onclose = null;
        ws.onerror = null;
        ws.onmessage = null;
        // Closing a socket still connecting makes the browser log an error.
        if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws?.close();
        else ws.close();
      }
    };
  }, [key]);
  return state;
}

// The API client: bearer tokens, one refresh on 401, the API's error
// message. The session lives in sessionStorage (this tab only).
import { expiresSoon, parseSession, type Permission, type Session } from './session';

const storageKey = 'redforge.session';

/** ApiError is an API refusal: the message is the API's own. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public field?: string,
  ) {
    super(message);
  }
}

let session: Session | null = load();
let perms: Permission[] = [];
const listeners = new Set<() => void>();
let endedReason = '';

function load(): Session | null {
  try {
    return parseSession(JSON.parse(sessionStorage.getItem(storageKey) || 'null'));
  } catch {
    return null;
  }
}

function notify() {
  listeners.forEach((f) => f());
}

export function getSession(): Session | null {
  return session;
}

export function getPermissions(): Permission[] {
  return perms;
}

/** sessionEndedReason says why the user was sent to the login page, once. */
export function takeEndedReason(): string {
  const r = endedReason;
  endedReason = '';
  return r;
}

export function onSessionChange(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

function setSession(s: Session | null) {
  session = s;
  if (s) sessionStorage.setItem(storageKey, JSON.stringify(s));
  else sessionStorage.removeItem(storageKey);
}

/** endSession forgets the session and says why on the login page. */
export function endSession(reason: string) {
  setSession(null);
  perms = [];
  endedReason = reason;
  notify();
}

async function parseError(res: Response): Promise<ApiError> {
  let code = 'http_' + res.status;
  let message = `${res.status} ${res.statusText || 'error'}`;
  let field: string | undefined;
  try {
    const body = await res.json();
    if (body?.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      field = body.error.field;
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, code, message, field);
}

let refreshing: Promise<boolean> | null = null;

/** refresh trades the refresh token for a new session; concurrent callers share one call. */
export function refresh(): Promise<boolean> {
  if (!session) return Promise.resolve(false);
  if (!refreshing) {
    const rt = session.refresh_token;
    refreshing = fetch('/api/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: rt }),
    })
      .then(async (res) => {
        if (!res.ok) return false;
        const s = parseSession(await res.json());
        if (!s) return false;
        setSession(s);
        return true;
      })
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** freshToken returns an access token that is not about to expire (for the WebSocket). */
export async function freshToken(): Promise<string | null> {
  if (session && expiresSoon(session)) await refresh();
  return session?.access_token ?? null;
}

export interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  /** raw returns the Response instead of its JSON. */
  raw?: boolean;
}

/** request calls the API with the session's token; a 401 refreshes once, then ends the session. */
export async function request<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const send = () => {
    const headers: Record<string, string> = {};
    if (session) headers.Authorization = 'Bearer ' + session.access_token;
    let body: BodyInit | undefined;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    }
    return fetch(path, { method, headers, body, signal: opts.signal });
  };
  if (session && expiresSoon(session)) await refresh();
  let res = await send();
  if (res.status === 401 && session) {
    if (await refresh()) res = await send();
    if (res.status === 401) {
      endSession('Your session has ended. Log in again.');
      throw await parseError(res);
    }
  }
  if (!res.ok) throw await parseError(res);
  if (opts.raw) return res as unknown as T;
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const get = <T = any>(path: string, signal?: AbortSignal) => request<T>('GET', path, { signal });
export const post = <T = any>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} });
export const patch = <T = any>(path: string, body: unknown) => request<T>('PATCH', path, { body });
export const del = <T = any>(path: string) => request<T>('DELETE', path);

/** login opens a session and loads the permissions. */
export async function login(username: string, password: string): Promise<void> {
  const res = await fetch('/api/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) throw await parseError(res);
  const s = parseSession(await res.json());
  if (!s) throw new ApiError(500, 'bad_response', 'the hub answered the login with an unexpected body');
  setSession(s);
  await loadPermissions();
  notify();
}

/** loadPermissions reads GET /api/auth/me. */
export async function loadPermissions(): Promise<Permission[]> {
  const me = await get<{ permissions: Permission[] | null }>('/api/auth/me');
  perms = me.permissions ?? [];
  return perms;
}

/** logout revokes the session on the hub and forgets it here. */
export async function logout(): Promise<void> {
  try {
    await post('/api/auth/logout');
  } catch {
    /* the session is forgotten either way */
  }
  endSession('');
}

/** download fetches an authenticated file and saves it under name. */
export async function download(method: string, path: string, body: unknown, fallbackName: string): Promise<string> {
  const res = await request<Response>(method, path, { body, raw: true });
  const cd = res.headers.get('Content-Disposition') || '';
  const name = /filename="([^"]+)"/.exec(cd)?.[1] || fallbackName;
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}

/** errorMessage is what to show for a failure. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.name === 'TypeError' ? 'The hub cannot be reached: ' + e.message : e.message;
  return String(e);
}

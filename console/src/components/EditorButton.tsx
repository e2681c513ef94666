// "Open editor": the instance's Node-RED editor, served by the hub at
// /editor/{name}/ behind the console session. The button asks the hub for
// an editor session (an HttpOnly cookie scoped to that path), then opens
// the editor in a new tab that has no handle on this one.
import { useState } from 'preact/hooks';
import { errorMessage, getPermissions, post } from '../api';
import { can } from '../session';
import type { Instance } from '../types';
import { toast } from './ui';

interface EditorSession {
  url: string;
  permission: string;
  expires_at: string;
}

export function EditorButton({ inst }: { inst: Instance }) {
  const [busy, setBusy] = useState(false);
  if (!can(getPermissions(), 'instances', 'read')) return null;
  const open = async () => {
    // Opened before the request so the browser counts it as the click's;
    // cut from this tab before it navigates.
    const tab = window.open('', '_blank');
    if (tab) tab.opener = null;
    setBusy(true);
    try {
      const s = await post<EditorSession>(`/api/instances/${encodeURIComponent(inst.id)}/editor`);
      if (tab) tab.location.href = s.url;
      else window.location.href = s.url;
      if (s.permission === 'read') toast('ok', `${inst.name}: the editor opens read-only (your role may not deploy)`);
    } catch (e) {
      tab?.close();
      toast('error', `${inst.name}: ${errorMessage(e)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <button class="btn" onClick={open} disabled={busy} data-testid="open-editor" title="The Node-RED editor of this instance, through the hub">
      Open editor
    </button>
  );
}

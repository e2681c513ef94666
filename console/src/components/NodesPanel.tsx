// The instance's node packages: what its runtimes have, installing one
// (from the registry by exact version, or a tarball uploaded to the hub
// for sites without a registry) and removing one. Each change is a
// blue-green deployment: a package that does not install or load rolls
// back, and the deployment's page follows it.
import { useState } from 'preact/hooks';
import { ApiError, del, errorMessage, freshToken, get, getPermissions, post } from '../api';
import { navigate } from '../router';
import { can } from '../session';
import type { Instance } from '../types';
import { Confirm, Empty, ErrorBox, Loading, toast, useAsync } from './ui';

interface NodePackage {
  name: string;
  version: string;
  source: string;
  sha256?: string;
}

interface NodesView {
  nodes: NodePackage[];
  policy: { allow: string[]; deny: string[] };
}

async function uploadTarball(file: File): Promise<{ name: string; version: string; sha256: string }> {
  const token = await freshToken();
  const res = await fetch('/api/nodes/tarballs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/gzip', Authorization: 'Bearer ' + token },
    body: file,
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body?.error?.code ?? 'error', body?.error?.message ?? res.statusText, body?.error?.field);
  return body;
}

export function NodesPanel({ inst }: { inst: Instance }) {
  const view = useAsync((signal) => get<NodesView>(`/api/instances/${inst.id}/nodes`, signal), [inst.id]);
  const [name, setName] = useState('');
  const [version, setVersion] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [removing, setRemoving] = useState('');
  const mayChange = can(getPermissions(), 'instances', 'update');

  const started = (what: string, d: { id: string }) => {
    toast('ok', `${inst.name}: ${what} — deployment started`);
    navigate(`/deployments/${d.id}`);
  };
  const install = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      let body: Record<string, string> = { name: name.trim(), version: version.trim() };
      if (file) {
        const up = await uploadTarball(file);
        body = { name: up.name, version: up.version, tarball: up.sha256 };
      }
      const res = await post<{ deployment: { id: string } }>(`/api/instances/${inst.id}/nodes`, body);
      started(`installing ${body.name}@${body.version}`, res.deployment);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    const res = await del<{ deployment: { id: string } }>(`/api/instances/${inst.id}/nodes?name=${encodeURIComponent(removing)}`);
    started(`removing ${removing}`, res.deployment);
  };

  return (
    <div class="card" data-testid="nodes-panel">
      <div class="card-head">
        <h2>Node packages</h2>
      </div>
      {view.loading && !view.data ? (
        <Loading what="Loading the node packages" />
      ) : view.error ? (
        <ErrorBox error={view.error} retry={view.reload} />
      ) : view.data!.nodes.length === 0 ? (
        <Empty>Only Node-RED's own nodes.</Empty>
      ) : (
        <table class="table">
          <thead>
            <tr>
              <th>Package</th>
              <th>Version</th>
              <th>From</th>
              {mayChange && <th />}
            </tr>
          </thead>
          <tbody>
            {view.data!.nodes.map((p) => (
              <tr>
                <td class="mono">{p.name}</td>
                <td class="mono">{p.version}</td>
                <td>{p.source === 'upload' ? 'uploaded tarball' : 'npm registry'}</td>
                {mayChange && (
                  <td>
                    <button class="btn btn-small" onClick={() => setRemoving(p.name)}>
                      Remove
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {mayChange && (
        <form onSubmit={install} data-testid="nodes-install">
          <div class="form-row">
            <label class="field">
              Package
              <input value={name} placeholder="node-red-contrib-…" disabled={!!file} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
            </label>
            <label class="field">
              Version
              <input value={version} placeholder="1.2.3" disabled={!!file} onInput={(e) => setVersion((e.target as HTMLInputElement).value)} />
            </label>
            <label class="field">
              or a tarball (npm pack)
              <input type="file" accept=".tgz,.tar.gz,application/gzip" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
            </label>
            <button class="btn btn-primary" disabled={busy || (!file && (!name || !version))}>
              {busy ? 'Starting…' : 'Install'}
            </button>
          </div>
          {error && <p class="form-error">{error}</p>}
        </form>
      )}
      {view.data && (view.data.policy.allow.length > 0 || view.data.policy.deny.length > 0) && (
        <p class="muted small">
          Cluster policy — allowed: {view.data.policy.allow.join(', ') || 'any package'}; denied: {view.data.policy.deny.join(', ') || 'none'}.
        </p>
      )}
      <p class="muted small">An install or removal is a blue-green deployment: the new runtime gets the new set with the live flows; if a package does not install or load, it rolls back.</p>
      {removing && (
        <Confirm title={`Remove ${removing}?`} action="Remove" danger onConfirm={remove} onClose={() => setRemoving('')}>
          <p>A blue-green deployment gives {inst.name} the node set without it. Flows that use its nodes stop with “missing node types”.</p>
        </Confirm>
      )}
    </div>
  );
}

// The audit log's hash-chain verification (GET /api/audit/verify), shown
// above the audit table, with a button to verify again.
import { get } from '../../api';
import { useAsync } from '../../components/ui';

interface Verification {
  ok: boolean;
  checked: number;
  first_broken?: number;
  reason: string;
}

export function ChainStatus() {
  const v = useAsync((signal) => get<Verification>('/api/audit/verify', signal), []);
  return (
    <div class={'chain ' + (v.data ? (v.data.ok ? 'chain-ok' : 'chain-broken') : '')} data-testid="chain-status">
      {v.loading ? (
        <span>Verifying the hash chain…</span>
      ) : v.error ? (
        <span>Verification failed: {v.error}</span>
      ) : v.data!.ok ? (
        <span>✓ Hash chain intact — {v.data!.checked} records checked</span>
      ) : (
        <span>
          ✗ Hash chain broken at record #{v.data!.first_broken}: {v.data!.reason}
        </span>
      )}
      <button class="btn btn-small" onClick={v.reload} disabled={v.loading}>
        Verify again
      </button>
    </div>
  );
}

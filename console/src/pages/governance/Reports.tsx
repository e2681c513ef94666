// Reports (POST /api/reports/generate): a compliance report (SOC 2 change
// management, HIPAA access, GDPR subject access) over a time range,
// downloaded as PDF, CSV or JSON.
import { useState } from 'preact/hooks';
import { download, errorMessage } from '../../api';
import { localInputToRFC3339, toLocalInput } from '../../format';
import { toast } from '../../components/ui';

export function ReportsPage() {
  const [type, setType] = useState('soc2_change');
  // The API needs both ends: the last 30 days up to the next minute by default.
  const [start, setStart] = useState(() => toLocalInput(new Date(Date.now() - 30 * 86400_000)));
  const [end, setEnd] = useState(() => toLocalInput(new Date(Date.now() + 60_000)));
  const [subject, setSubject] = useState('');
  const [format, setFormat] = useState('pdf');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const generate = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    const body: any = { type, format };
    const s = localInputToRFC3339(start);
    const en = localInputToRFC3339(end);
    if (s) body.start = s;
    if (en) body.end = en;
    if (subject.trim()) body.subject_user_id = subject.trim();
    try {
      const name = await download('POST', '/api/reports/generate', body, 'redforge-report.' + format);
      toast('ok', `Report ${name} downloaded`);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card form" onSubmit={generate} aria-label="Generate a report">
      <h2>Compliance report</h2>
      <div class="form-row">
        <label class="field">
          Type
          <select value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)}>
            <option value="soc2_change">SOC 2 change management</option>
            <option value="hipaa_access">HIPAA access</option>
            <option value="gdpr_access">GDPR subject access</option>
          </select>
        </label>
        <label class="field">
          From
          <input type="datetime-local" required value={start} onInput={(e) => setStart((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field">
          To
          <input type="datetime-local" required value={end} onInput={(e) => setEnd((e.target as HTMLInputElement).value)} />
        </label>
        {type === 'gdpr_access' && (
          <label class="field">
            Subject user id
            <input value={subject} onInput={(e) => setSubject((e.target as HTMLInputElement).value)} />
          </label>
        )}
        <label class="field">
          Format
          <select value={format} onChange={(e) => setFormat((e.target as HTMLSelectElement).value)}>
            <option value="pdf">PDF</option>
            <option value="csv">CSV</option>
            <option value="json">JSON</option>
          </select>
        </label>
      </div>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <button class="btn btn-primary" type="submit" disabled={busy}>
        {busy ? 'Generating…' : 'Generate and download'}
      </button>
    </form>
  );
}

// The login page: username and password for a session; shows why a
// previous session ended.
import { useState } from 'preact/hooks';
import { errorMessage, login, takeEndedReason } from '../api';

export function LoginPage() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [notice] = useState(takeEndedReason());
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await login(username.trim(), password);
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };
  return (
    <div class="login-wrap">
      <form class="login card" onSubmit={submit} aria-labelledby="login-title">
        <div class="brand login-brand">
          <span class="brand-mark" aria-hidden="true">▲</span> RedForge <span class="brand-sub">Control Tower</span>
        </div>
        <h1 id="login-title">Log in</h1>
        {notice && <p class="notice">{notice}</p>}
        <label class="field">
          Username
          <input name="username" autocomplete="username" value={username} onInput={(e) => setUsername((e.target as HTMLInputElement).value)} required autofocus />
        </label>
        <label class="field">
          Password
          <input name="password" type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} required />
        </label>
        {error && (
          <p class="form-error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button class="btn btn-primary btn-wide" type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
        <p class="hint">The first admin's password is printed once by the hub when it starts.</p>
      </form>
    </div>
  );
}

import { useId, useState, type FormEvent } from 'react';
import { newUuid, normalizeUuid } from './uuid.ts';
import { Logo } from './Logo.tsx';

interface Props {
  draft?: string;
  error?: string;
  onSignIn: (userId: string) => void;
}

export function SignIn({ draft = '', error: initialError, onSignIn }: Props) {
  const [text, setText] = useState(draft);
  const [error, setError] = useState<string | undefined>(initialError);
  const inputId = useId();
  const errorId = useId();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (text.trim() === '') {
      setError('Enter your user id, or press “New user” to make one.');
      return;
    }
    const id = normalizeUuid(text);
    if (!id) {
      setError('That is not a UUID. A user id looks like 3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e34.');
      return;
    }
    onSignIn(id);
  };

  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={submit} noValidate aria-labelledby={`${inputId}-title`}>
        <div className="signin-brand">
          <Logo />
          <div>
            <h1 id={`${inputId}-title`}>Report board</h1>
            <p className="muted">Live status of your reports, in every tab.</p>
          </div>
        </div>
        <label htmlFor={inputId} className="field-label">
          User id
        </label>
        <input
          id={inputId}
          className={error ? 'input invalid' : 'input'}
          data-testid="signin-input"
          value={text}
          onChange={(e) => {
            setText(e.target.value);
            setError(undefined);
          }}
          placeholder="Paste a UUID, e.g. 3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e34"
          autoComplete="off"
          spellCheck={false}
          autoFocus
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? errorId : undefined}
        />
        {error && (
          <p id={errorId} className="field-error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <div className="signin-actions">
          <button type="submit" className="btn btn-primary" data-testid="signin-submit">
            Sign in
          </button>
          <button
            type="button"
            className="btn"
            data-testid="signin-new"
            aria-label="New user: sign in with a freshly generated user id"
            onClick={() => onSignIn(newUuid())}
          >
            New user
          </button>
        </div>
        <p className="hint">
          Your id stays in the address bar, so reloading or opening the link in another tab keeps you signed in.
        </p>
      </form>
    </main>
  );
}

interface TokenProps {
  error?: string;
  /** Opens the session; resolves to an error sentence, or null when signed in. */
  onSignIn: (token: string) => Promise<string | null>;
}

/** The sign-in of a server with authorization on: paste a token (its `sub` is the user id). */
export function TokenSignIn({ error: initialError, onSignIn }: TokenProps) {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>(initialError);
  const [busy, setBusy] = useState(false);
  const inputId = useId();
  const errorId = useId();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (text.trim() === '') {
      setError('Paste your token first.');
      return;
    }
    setBusy(true);
    const failure = await onSignIn(text.trim());
    setBusy(false);
    if (failure) setError(failure);
  };

  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={submit} noValidate aria-labelledby={`${inputId}-title`}>
        <div className="signin-brand">
          <Logo />
          <div>
            <h1 id={`${inputId}-title`}>Report board</h1>
            <p className="muted">Live status of your reports, in every tab.</p>
          </div>
        </div>
        <label htmlFor={inputId} className="field-label">
          Token
        </label>
        <textarea
          id={inputId}
          className={error ? 'input invalid' : 'input'}
          data-testid="signin-token"
          value={text}
          rows={4}
          onChange={(e) => {
            setText(e.target.value);
            setError(undefined);
          }}
          placeholder="Paste the token you were given (eyJ…)"
          autoComplete="off"
          spellCheck={false}
          autoFocus
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? errorId : undefined}
        />
        {error && (
          <p id={errorId} className="field-error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <div className="signin-actions">
          <button type="submit" className="btn btn-primary" data-testid="signin-submit" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </div>
        <p className="hint">
          This server checks who you are. Your token stays in a cookie this page cannot read; your user id is the
          token&apos;s subject. An administrator mints one with <code>sse-server token &lt;your user id&gt;</code>.
        </p>
      </form>
    </main>
  );
}

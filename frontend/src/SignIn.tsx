import { useId, useState, type ChangeEvent, type FormEvent, type ReactNode } from 'react';
import { newUuid, normalizeUuid } from './uuid.ts';
import { Logo } from './Logo.tsx';

/** The one field of a sign-in form: its text, its error, and the attributes its input or textarea shares. */
function useSignInField(initialText: string, initialError: string | undefined) {
  const [text, setText] = useState(initialText);
  const [error, setError] = useState<string | undefined>(initialError);
  const inputId = useId();
  const errorId = useId();
  const fieldProps = {
    id: inputId,
    className: error ? 'input invalid' : 'input',
    value: text,
    onChange: (e: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => {
      setText(e.target.value);
      setError(undefined);
    },
    autoComplete: 'off',
    spellCheck: false,
    autoFocus: true,
    'aria-invalid': error ? true : undefined,
    'aria-describedby': error ? errorId : undefined,
  };
  return { text, error, setError, inputId, errorId, fieldProps };
}

interface CardProps {
  field: ReturnType<typeof useSignInField>;
  label: string;
  onSubmit: (e: FormEvent) => void;
  /** The input or textarea, given `field.fieldProps`. */
  input: ReactNode;
  actions: ReactNode;
  hint: ReactNode;
}

/** The card both sign-in forms share: the brand, the labelled field and its error, the buttons, a hint. */
function SignInCard({ field, label, onSubmit, input, actions, hint }: CardProps) {
  const { error, inputId, errorId } = field;
  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={onSubmit} noValidate aria-labelledby={`${inputId}-title`}>
        <div className="signin-brand">
          <Logo />
          <div>
            <h1 id={`${inputId}-title`}>Report board</h1>
            <p className="muted">Live status of your reports, in every tab.</p>
          </div>
        </div>
        <label htmlFor={inputId} className="field-label">
          {label}
        </label>
        {input}
        {error && (
          <p id={errorId} className="field-error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <div className="signin-actions">{actions}</div>
        <p className="hint">{hint}</p>
      </form>
    </main>
  );
}

interface Props {
  draft?: string;
  error?: string;
  onSignIn: (userId: string) => void;
}

export function SignIn({ draft = '', error: initialError, onSignIn }: Props) {
  const field = useSignInField(draft, initialError);
  const { text, setError } = field;

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
    <SignInCard
      field={field}
      label="User id"
      onSubmit={submit}
      input={
        <input
          {...field.fieldProps}
          data-testid="signin-input"
          placeholder="Paste a UUID, e.g. 3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e34"
        />
      }
      actions={
        <>
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
        </>
      }
      hint="Your id stays in the address bar, so reloading or opening the link in another tab keeps you signed in."
    />
  );
}

interface TokenProps {
  error?: string;
  /** Opens the session; resolves to an error sentence, or null when signed in. */
  onSignIn: (token: string) => Promise<string | null>;
}

/** The sign-in of a server with authorization on: paste a token (its `sub` is the user id). */
export function TokenSignIn({ error: initialError, onSignIn }: TokenProps) {
  const field = useSignInField('', initialError);
  const { text, setError } = field;
  const [busy, setBusy] = useState(false);

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
    <SignInCard
      field={field}
      label="Token"
      onSubmit={submit}
      input={
        <textarea
          {...field.fieldProps}
          data-testid="signin-token"
          rows={4}
          placeholder="Paste the token you were given (eyJ…)"
        />
      }
      actions={
        <button type="submit" className="btn btn-primary" data-testid="signin-submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      }
      hint={
        <>
          This server checks who you are. Your token stays in a cookie this page cannot read; your user id is the
          token&apos;s subject. An administrator mints one with <code>sse-server token &lt;your user id&gt;</code>.
        </>
      }
    />
  );
}

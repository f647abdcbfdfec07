import { lazy, Suspense, useEffect } from 'react';
import { useSession } from './session.ts';
import { SignIn, TokenSignIn } from './SignIn.tsx';
import { Board } from './Board.tsx';
import { isInspectPath } from './inspect/links.ts';

// The server answers every unknown page with index.html, so the path picks the page:
// /inspect is the stream inspector, loaded only there (the board's bundle stays as it was).
const Inspector = lazy(() => import('./inspect/Inspector.tsx').then((m) => ({ default: m.Inspector })));

export function App() {
  if (isInspectPath(window.location.pathname)) {
    return (
      <Suspense fallback={null}>
        <Inspector />
      </Suspense>
    );
  }
  return <Dashboard />;
}

/** The report board, behind its sign-in. */
function Dashboard() {
  const { auth, session, signIn, signInWithToken, signOut } = useSession();

  useEffect(() => {
    document.title =
      session.kind === 'signed-in' ? `Reports · ${session.userId.slice(0, 8)}` : 'Report board · sign in';
  }, [session]);

  // Until the server said whether it checks tokens: nothing to show yet.
  if (auth === null) return <main className="signin" data-testid="session-checking" aria-busy="true" />;

  if (session.kind === 'signed-in') {
    // keyed: another user gets a fresh board (state, stream and all)
    return <Board key={session.userId} userId={session.userId} onSignOut={() => void signOut()} />;
  }
  if (auth) return <TokenSignIn key={session.error ?? ''} error={session.error} onSignIn={signInWithToken} />;
  return <SignIn key={session.draft ?? ''} draft={session.draft} error={session.error} onSignIn={signIn} />;
}

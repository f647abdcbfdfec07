import { useEffect } from 'react';
import { useSession } from './session.ts';
import { SignIn } from './SignIn.tsx';
import { Board } from './Board.tsx';

export function App() {
  const { session, signIn, signOut } = useSession();

  useEffect(() => {
    document.title =
      session.kind === 'signed-in' ? `Reports · ${session.userId.slice(0, 8)}` : 'Report board · sign in';
  }, [session]);

  if (session.kind === 'signed-in') {
    // keyed: another user gets a fresh board (state, stream and all)
    return <Board key={session.userId} userId={session.userId} onSignOut={signOut} />;
  }
  return <SignIn key={session.draft ?? ''} draft={session.draft} error={session.error} onSignIn={signIn} />;
}

export function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  return <button onClick={() => onSignedIn('x')}>Sign in</button>;
}

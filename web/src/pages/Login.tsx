import { useState } from "preact/hooks";
import { get, post, type Identity } from "../api";
import { asApiError, ErrorBox } from "../components/ui";

/** The server token (printed by `myelin serve`, kept in DATA_DIR/token) or an account. */
export function LoginPage({ onLogin }: { onLogin: (me: Identity) => void }) {
  const [token, setToken] = useState("");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<ReturnType<typeof asApiError> | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      await post("/login", name ? { name, password } : { token: token.trim() });
      onLogin(await get<Identity>("/me"));
    } catch (err) {
      setError(asApiError(err));
    }
  };
  return (
    <main class="login">
      <form class="card" onSubmit={submit}>
        <h1>Myelin</h1>
        <p class="muted">
          Open the URL that <code>myelin serve</code> printed, or paste the token from the data
          dir's <code>token</code> file.
        </p>
        <label>
          Token
          <input
            name="token"
            type="password"
            autoComplete="off"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        <details>
          <summary>Log in with an account instead</summary>
          <label>
            Name
            <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          <label>
            Password
            <input
              name="password"
              type="password"
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
        </details>
        <ErrorBox error={error} />
        <button type="submit" class="primary">
          Log in
        </button>
      </form>
    </main>
  );
}

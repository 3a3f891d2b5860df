import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { get, post, setUnauthorizedHandler, type Identity } from "./api";
import { useRoute, type Route } from "./router";
import { LoginPage } from "./pages/Login";
import { HomePage } from "./pages/Home";
import { DatasetsPage } from "./pages/Datasets";
import { DatasetPage } from "./pages/Dataset";
import { NewJobPage } from "./pages/NewJob";
import { JobPage } from "./pages/Job";
import { ModelPage } from "./pages/Model";
import { ComparePage } from "./pages/Compare";
import { GpusPage } from "./pages/Gpus";
import "uplot/dist/uPlot.min.css";
import "./style.css";

function Page({ route }: { route: Route }) {
  const [first, id, sub] = route.path;
  const n = Number(id);
  switch (first) {
    case undefined:
      return <HomePage />;
    case "datasets":
      return id ? <DatasetPage id={n} /> : <DatasetsPage />;
    case "new":
      return <NewJobPage query={route.query} />;
    case "jobs":
      return sub === "model" ? <ModelPage id={n} /> : <JobPage id={n} />;
    case "compare":
      return <ComparePage query={route.query} />;
    case "gpus":
      return <GpusPage />;
    default:
      return <p class="error">No page at #{route.path.join("/")}.</p>;
  }
}

const NAV: [string, string][] = [
  ["#/", "Home"],
  ["#/datasets", "Datasets"],
  ["#/new", "New job"],
  ["#/compare", "Compare"],
  ["#/gpus", "GPUs"],
];

function App() {
  const route = useRoute();
  const [me, setMe] = useState<Identity | null | undefined>(undefined);
  useEffect(() => {
    setUnauthorizedHandler(() => setMe(null));
    get<Identity>("/me").then(setMe, () => setMe(null));
  }, []);
  if (me === undefined) return null;
  if (me === null) return <LoginPage onLogin={setMe} />;
  const here = `#/${route.path[0] ?? ""}`;
  return (
    <>
      <nav class="top">
        <a class="brand" href="#/">
          Myelin
        </a>
        {NAV.map(([href, label]) => (
          <a href={href} class={href === here ? "active" : ""}>
            {label}
          </a>
        ))}
        <span class="spacer" />
        <span class="muted">{me.name}</span>
        <button class="link" onClick={() => post("/logout").finally(() => setMe(null))}>
          Log out
        </button>
      </nav>
      <main>
        <Page route={route} />
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);

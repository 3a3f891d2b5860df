// A page's heading: where it sits (links back up), its title, and its actions on the right.
import type { ComponentChildren } from "preact";
import "./PageTitle.css";

export function PageTitle({
  crumbs,
  title,
  children,
}: {
  crumbs: ComponentChildren;
  title: ComponentChildren;
  children?: ComponentChildren;
}) {
  return (
    <header class="page-title">
      <p class="muted crumbs">{crumbs}</p>
      <div class="row">
        <h1>{title}</h1>
        {children}
      </div>
    </header>
  );
}

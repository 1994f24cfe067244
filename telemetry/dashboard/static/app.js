// The page's hash router: #/ runs, #/run/<id>, #/compare/<ids>, #/trades|sweep|health/<id>.
const view = document.getElementById("view");
let leave = null;
let generation = 0;

function parse(hash) {
  const text = hash.replace(/^#\/?/, "");
  if (!text) return { name: "runs", arg: "" };
  const slash = text.indexOf("/");
  const name = slash < 0 ? text : text.slice(0, slash);
  const arg = slash < 0 ? "" : decodeURIComponent(text.slice(slash + 1));
  return { name, arg };
}

async function route() {
  const mine = ++generation;
  if (typeof leave === "function") leave();
  leave = null;
  const { name, arg } = parse(location.hash);
  view.replaceChildren();
  view.dataset.view = name;
  if (!/^[a-z]+$/.test(name)) {
    view.textContent = `no view ${name}`;
    return;
  }
  try {
    const module = await import(`./views/${name}.js`);
    const root = document.createElement("div");
    view.replaceChildren(root);
    const cleanup = await module.render(root, arg);
    if (mine !== generation) {
      if (typeof cleanup === "function") cleanup();
      return;
    }
    leave = cleanup;
  } catch (error) {
    const box = document.createElement("p");
    box.className = "error";
    box.dataset.testid = "view-error";
    box.textContent = String(error.message || error);
    view.replaceChildren(box);
  }
}

window.addEventListener("hashchange", route);
route();

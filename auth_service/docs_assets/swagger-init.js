// Starts Swagger UI for /docs. A file rather than flask-smorest's inline script, so the
// docs pages' CSP can allow scripts from this origin only (auth_service/headers.py).
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  var config = {url: container.dataset.specUrl, dom_id: "#swagger-ui-container"};
  window.ui = SwaggerUIBundle(Object.assign(config, JSON.parse(container.dataset.config)));
});

// Starts Swagger UI on /api/v1/docs (a file of its own: the page's CSP admits no inline
// script). The document and "try it" requests go to this origin only; no validator badge,
// which would call a third-party service.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: true,
    persistAuthorization: false,
    displayRequestDuration: true,
    defaultModelExpandDepth: 3,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});

// Swagger UI over the document this segd serves; "Try it out" calls this same segd.
window.ui = SwaggerUIBundle({
  url: '/openapi.yaml',
  dom_id: '#segd-api',
  deepLinking: true,
  tryItOutEnabled: false,
});
